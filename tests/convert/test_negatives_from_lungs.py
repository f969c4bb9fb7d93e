"""convert --negatives-from lungs: negatives only from slices that show the lungs, the rule
recorded in dataset.json; --negatives-from series (the default) keeps the earlier rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.lungs import write_chest_series
from typer.testing import CliRunner

from detect.cli import app
from detect.convert import convert
from detect.convert.config import ConvertConfig
from detect.errors import ConfigError

LUNGS = range(10, 26)  # slices 0-9 and 26-29 show no lung
BOXED = (17,)          # negatives come from at least 5 slices away: < 12 or > 22


@pytest.fixture(scope="module")
def chest(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("chest")
    write_chest_series(root / "dicom", root / "ann", patient="A0001", slices=30,
                       lung_slices=LUNGS, boxed=BOXED)
    return root / "dicom", root / "ann"


def _negatives(out: Path) -> tuple[list[int], dict]:
    manifest = json.loads((out / "dataset.json").read_text())
    # a val split of training images (no val patient: val_from_train) repeats them
    splits = ("train", "test") if manifest.get("val_from_train") else ("train", "val", "test")
    images = [i for split in splits
              for i in json.loads((out / "coco" / f"{split}.json").read_text())["images"]]
    return sorted(i["slice_index"] for i in images if not i["source_xml"]), manifest


def test_negatives_come_from_the_lungs(chest, tmp_path):
    out = tmp_path / "lungs"
    convert(ConvertConfig(*chest, out, negatives=5, negatives_from="lungs", workers=1,
                          split=(1.0, 0.0, 0.0)))
    negatives, manifest = _negatives(out)
    assert negatives == [10, 11, 23, 24, 25]  # the only lung slices far from the box
    rule = manifest["negatives_rule"]
    assert rule["rule"] == "negatives-in-lungs" and rule["no_lung_field"] == {}
    assert rule["lung_field"]["rule"] == "hu-air-inside-body"
    assert manifest["converter"]["args"]["negatives_from"] == "lungs"


def test_series_rule_is_unchanged(chest, tmp_path):
    out = tmp_path / "series"
    convert(ConvertConfig(*chest, out, negatives=5, workers=1, split=(1.0, 0.0, 0.0)))
    negatives, manifest = _negatives(out)
    assert len(negatives) == 5 and all(i < 12 or i > 22 for i in negatives)
    assert any(i not in LUNGS for i in negatives)  # this seed picks slices without lungs
    assert manifest["negatives_rule"] == {"rule": "away-from-boxes", "version": 1}


def test_bad_source_is_refused(chest, tmp_path):
    with pytest.raises(ConfigError, match="negatives-from"):
        ConvertConfig(*chest, tmp_path / "x", negatives_from="liver")
    result = CliRunner().invoke(app, ["convert", str(chest[0]), str(chest[1]),
                                      str(tmp_path / "y"), "--negatives-from", "liver"])
    assert result.exit_code == 1 and result.output.startswith("error: --negatives-from")


def test_a_series_without_lungs_falls_back_and_is_listed(tmp_path):
    uids = write_chest_series(tmp_path / "dicom", tmp_path / "ann", patient="B0002",
                              slices=20, lung_slices=(), boxed=(10,))
    out = tmp_path / "out"
    convert(ConvertConfig(tmp_path / "dicom", tmp_path / "ann", out, negatives=2,
                          negatives_from="lungs", workers=1, split=(1.0, 0.0, 0.0)))
    negatives, manifest = _negatives(out)
    assert len(negatives) == 2  # any slice away from the box, as --negatives-from series
    (why,) = manifest["negatives_rule"]["no_lung_field"].values()
    assert "no air inside the body" in why
    assert len(uids) == 20
