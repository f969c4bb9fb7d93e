"""convert --hu-jitter: jittered copies of the training images only, their windows and noise
as recorded, the same whatever the workers; bad rules refused in one line; a
re-run with another rule refused without --overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.lungs import write_chest_series
from typer.testing import CliRunner

from detect.cli import app
from detect.convert import convert
from detect.convert.augment import HuJitter
from detect.convert.config import ConvertConfig
from detect.errors import ConfigError, OutputFolderError
from detect.recipe import parse_channels

LUNGS = range(4, 16)
BODY = (slice(100, 156), slice(118, 138))  # soft tissue (40 HU) between the two lungs
RULE = HuJitter(copies=2, width=0.2, level=50.0, noise=40.0)


@pytest.fixture(scope="module")
def chest(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("chest")
    for patient in ("A0001", "A0002"):
        write_chest_series(root / "dicom", root / "ann", patient=patient, slices=20,
                           lung_slices=LUNGS, boxed=(9, 10))
    return root / "dicom", root / "ann"


def _convert(chest: tuple[Path, Path], out: Path, *, workers: int = 1,
             rule: HuJitter = RULE, channels: str = "wide,wide,wide") -> dict:
    convert(ConvertConfig(*chest, out, recipe=parse_channels(channels), negatives=1,
                          split=(0.5, 0.0, 0.5), workers=workers, hu_jitter=rule))
    return json.loads((out / "dataset.json").read_text())


def _coco(out: Path, split: str) -> list[dict]:
    return json.loads((out / "coco" / f"{split}.json").read_text())["images"]


def _png(out: Path, split: str, name: str) -> np.ndarray:
    return np.asarray(Image.open(out / "images" / split / f"{name}.png"))


@pytest.fixture(scope="module")
def jittered(chest, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("jitter") / "ds"
    return out, _convert(chest, out)


def test_copies_of_training_images_only_with_the_same_boxes(jittered):
    out, manifest = jittered
    train, test = manifest["splits"]["train"], manifest["splits"]["test"]
    assert len(train) == 1 and len(test) == 1
    originals = [i for i in _coco(out, "train") if "hu_jitter" not in i]
    copies = [i for i in _coco(out, "train") if "hu_jitter" in i]
    assert len(originals) == 3 and len(copies) == 2 * len(originals)  # 2 boxed + 1 negative
    assert not any("hu_jitter" in i for i in _coco(out, "test"))
    assert len(_coco(out, "test")) == 3
    names = {Path(i["file_name"]).stem for i in originals}
    for image in copies:
        stem = Path(image["file_name"]).stem
        original, _, k = stem.rpartition("_hu")
        assert original in names and k in ("1", "2")
        labels = out / "labels" / "train"
        assert (labels / f"{stem}.txt").read_text() == (labels / f"{original}.txt").read_text()
    recorded = manifest["augmentation"]
    assert recorded["hu_jitter"]["copies"] == 2 and recorded["hu_jitter"]["splits"] == ["train"]
    assert {c["name"] for c in recorded["copies"]} == {
        Path(i["file_name"]).stem for i in copies}
    for draw in recorded["copies"]:
        assert 0.8 <= draw["width_scale"] <= 1.2
        assert -50 <= draw["level_shift_hu"] <= 50 and 0 <= draw["noise_sd_hu"] <= 40
    assert manifest["counts"]["train"]["images"] == 9


def _rounded_sd(mean: float, sd: float) -> float:
    """The spread of grey levels ``rint(mean + N(0, sd))``: with a small ``sd`` the rounding
    to whole levels dominates (up to 0.5 when ``mean`` sits half-way between two)."""
    rng = np.random.default_rng(0)
    return float(np.rint(mean + sd * rng.standard_normal(200_000)).std())


def test_a_copy_is_its_windows_and_noise(jittered):
    """Soft tissue (40 HU) of the copy: its mean where the recorded window puts 40 HU, its
    spread the recorded noise through that window (wide: W1500/L-400)."""
    out, manifest = jittered
    checked = 0
    for draw in manifest["augmentation"]["copies"]:
        image = _png(out, "train", draw["name"]).astype(float)
        original = _png(out, "train", draw["copy_of"]).astype(float)
        width = 1500.0 * draw["width_scale"]
        lower = -400.0 + draw["level_shift_hu"] - width / 2
        expected = (40.0 - lower) / width * 255
        assert np.all(original[BODY] == np.rint((40.0 + 400.0 + 750.0) / 1500.0 * 255))
        for channel in range(3):
            region = image[BODY][..., channel]
            assert region.mean() == pytest.approx(expected, abs=1.0)
            assert region.std() == pytest.approx(
                _rounded_sd(expected, draw["noise_sd_hu"] * 255 / width), rel=0.1, abs=0.05)
        checked += 1
    assert checked == 6


def test_copies_are_the_same_with_any_number_of_workers(chest, jittered, tmp_path):
    out, manifest = jittered
    other = _convert(chest, tmp_path / "two", workers=2)
    assert other["augmentation"] == manifest["augmentation"]
    for draw in manifest["augmentation"]["copies"]:
        assert np.array_equal(_png(out, "train", draw["name"]),
                              _png(tmp_path / "two", "train", draw["name"]))


def test_2_5d_neighbours_get_their_own_noise(chest, tmp_path):
    out = tmp_path / "stack"
    manifest = _convert(chest, out, channels="2.5d:wide",
                        rule=HuJitter(copies=1, width=0.0, level=0.0, noise=40.0))
    draw = max(manifest["augmentation"]["copies"], key=lambda d: d["noise_sd_hu"])
    image = _png(out, "train", draw["name"]).astype(float)[BODY]
    assert not np.array_equal(image[..., 0], image[..., 1])
    assert not np.array_equal(image[..., 1], image[..., 2])


def test_without_jitter_the_dataset_is_as_before(chest, tmp_path):
    manifest = _convert(chest, tmp_path / "plain", rule=HuJitter())
    assert "augmentation" not in manifest and manifest["counts"]["train"]["images"] == 3
    assert not any("_hu" in p.name for p in (tmp_path / "plain" / "images").rglob("*.png"))


@pytest.mark.parametrize(("text", "match"), [
    ("x", "COPIES or COPIES,width"), ("2,blur=3", "COPIES or COPIES,width"),
    ("2,width=0.2,width=0.3", "COPIES or COPIES,width"), ("-1", "copies must be 0..20"),
    ("2,width=1.5", "width must be >= 0 and < 1"), ("2,noise=nan", "noise must be 0..500"),
    ("2,level=900", "level must be 0..500"),
])
def test_bad_rules_are_refused(chest, tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        HuJitter.parse(text)
    result = CliRunner().invoke(app, ["convert", str(chest[0]), str(chest[1]),
                                      str(tmp_path / "bad"), "--hu-jitter", text])
    assert result.exit_code == 1 and result.output.startswith("error: --hu-jitter")
    assert not (tmp_path / "bad").exists()


def test_the_rule_parses_with_defaults():
    assert HuJitter.parse("3") == HuJitter(copies=3)
    assert HuJitter.parse("1, noise=30,level=20") == HuJitter(1, 0.2, 20.0, 30.0)
    assert HuJitter.parse("1").noise == 60.0


def test_a_rerun_is_refused_when_the_rule_changes_and_its_copies_replaced(chest, tmp_path):
    """The rule is an option of the dataset (its copies are data): the same command again
    changes nothing, another rule or none is refused without --overwrite, naming it."""
    out = tmp_path / "ds"
    _convert(chest, out)
    before = (out / "dataset.json").read_bytes()
    _convert(chest, out)
    assert (out / "dataset.json").read_bytes() == before
    for other in (HuJitter(copies=1), HuJitter()):
        with pytest.raises(OutputFolderError, match=r"other options: augmentation "):
            _convert(chest, out, rule=other)
        assert (out / "dataset.json").read_bytes() == before
    convert(ConvertConfig(*chest, out, recipe=parse_channels("wide,wide,wide"), negatives=1,
                          split=(0.5, 0.0, 0.5), workers=1, overwrite=True))
    manifest = json.loads((out / "dataset.json").read_text())
    assert "augmentation" not in manifest and manifest["counts"]["train"]["images"] == 3
    assert not any("_hu" in p.name for p in (out / "images").rglob("*.png"))


def test_each_fold_keeps_the_copies_of_its_own_training_patients(chest, tmp_path):
    """--folds renders every patient's copies once into the pool; a fold's test patient and
    its val images (every 4th training original) carry none, and dataset.json lists only
    the copies the fold has."""
    out = tmp_path / "loo"
    convert(ConvertConfig(*chest, out, recipe=parse_channels("wide,wide,wide"), negatives=1,
                          workers=1, folds=2, hu_jitter=RULE))
    folds = sorted(out.glob("fold-*"))
    assert len(folds) == 2
    tested = set()
    for fold in folds:
        manifest = json.loads((fold / "dataset.json").read_text())
        train_patients = set(manifest["splits"]["train"])
        tested |= set(manifest["splits"]["test"])
        train = _coco(fold, "train")
        copies = [i for i in train if "hu_jitter" in i]
        assert len(copies) == 2 * (len(train) - len(copies)) == 6
        assert {i["patient_id"] for i in copies} == train_patients
        for split in ("val", "test"):
            assert _coco(fold, split), split
            assert not any("hu_jitter" in i or "_hu" in Path(i["file_name"]).stem
                           for i in _coco(fold, split)), split
        assert {c["name"] for c in manifest["augmentation"]["copies"]} == {
            Path(i["file_name"]).stem for i in copies}
    assert tested == {"A0001", "A0002"}
