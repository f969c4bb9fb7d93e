"""``detect convert --folds K`` and named splits on the phantom cohort: K complete
datasets whose images are links to one conversion, patients kept apart, val filled from
training images when no patient can be spared, and the command line's counts and
warnings."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detect.cli import app
from detect.convert import convert
from detect.convert.config import ConvertConfig
from detect.dataset import load_dataset
from detect.errors import ConfigError, OutputFolderError

runner = CliRunner()


def _images(root: Path, split: str) -> list[dict]:
    return list(json.loads((root / "coco" / f"{split}.json").read_text())["images"])


@pytest.fixture(scope="module")
def folds(cohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("folds") / "loo"
    convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, out, workers=2, folds=4))
    return out


def test_each_fold_is_a_dataset_testing_its_own_patients(folds):
    datasets = [load_dataset(folds / f"fold-{k}") for k in range(1, 5)]
    patients = set(datasets[0].manifest["patients"])
    tested: list[str] = []
    for k, info in enumerate(datasets, start=1):
        splits = info.splits
        assert info.manifest["fold"]["index"] == k and info.manifest["fold"]["count"] == 4
        assert splits["test"] == info.manifest["fold"]["test_patients"] != []
        assert not set(splits["test"]) & (set(splits["train"]) | set(splits["val"]))
        assert set(splits["train"]) | set(splits["test"]) | set(splits["val"]) == patients
        for split in ("train", "val", "test"):
            for image in _images(info.root, split):
                assert image["patient_id"] in splits[split]
                assert (info.root / image["file_name"]).is_file()
            assert _images(info.root, split), f"fold {k} has no {split} images"
        tested += splits["test"]
    assert sorted(tested) == sorted(patients)  # every patient tested exactly once


def test_folds_share_one_conversion_by_hard_links(folds):
    pool = folds / ".pool" / "images" / "train"
    rendered = {p.name: p.stat().st_ino for p in pool.glob("*.png")}
    assert rendered
    for k in range(1, 5):
        for png in (folds / f"fold-{k}" / "images").rglob("*.png"):
            assert png.stat().st_ino == rendered[png.name], png
    assert not (folds / "dataset.json").exists()  # OUT holds folds, not a dataset


def test_a_rerun_relinks_nothing_and_fewer_folds_retire_the_rest(cohort, tmp_path):
    out = tmp_path / "loo"
    config = ConvertConfig(cohort.dicom_root, cohort.annotation_root, out, workers=1, folds=3)
    convert(config)
    fold = load_dataset(out / "fold-1")
    before = fold.fingerprint
    again = convert(config)
    assert again.patients_converted == 0 and load_dataset(out / "fold-1").fingerprint == before
    mine = out / "fold-3" / "notes.txt"
    mine.write_text("mine")
    fewer = ConvertConfig(cohort.dicom_root, cohort.annotation_root, out, workers=1, folds=2)
    with pytest.raises(OutputFolderError, match=r"fold-1 holds the dataset .*folds 3 -> 2"):
        convert(fewer)  # the one overwrite rule: the folds would change
    assert load_dataset(out / "fold-1").fingerprint == before
    convert(dataclasses.replace(fewer, overwrite=True))
    assert not (out / "fold-3" / "dataset.json").exists()
    assert not list((out / "fold-3" / "images").rglob("*.png"))
    assert mine.read_text() == "mine"  # never a file convert did not write
    assert load_dataset(out / "fold-2").manifest["fold"]["count"] == 2


def test_val_from_train_when_no_patient_can_be_spared(tmp_path):
    from detect.synth.cohort import SynthConfig, synthesize

    cohort = synthesize(tmp_path / "c", SynthConfig(patients=2, slices=12, size=64, seed=2,
                                                    fused=False, letter_mix={"A": 1}))
    out = tmp_path / "ds"
    summary = convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, out, workers=1,
                                    test_patients=("A0001",)))
    info = load_dataset(out)
    filled = info.manifest["val_from_train"]
    train, val = _images(out, "train"), _images(out, "val")
    assert filled["images"] == len(val) == len(train[::4]) > 0
    assert {i["sop_instance_uid"] for i in val} <= {i["sop_instance_uid"] for i in train}
    assert info.splits["val"] == info.splits["train"]  # the leakage guard sees them
    assert info.manifest["empty_splits"] == {"val": "no letter has enough patients to reach "
                                             "it: A 1 patient(s) over 2 splits, and a letter "
                                             "with fewer patients than splits fills train first"}
    assert "val holds every 4th training image" in summary.datasets[0].warnings["val"]
    for image in val:
        linked = out / image["file_name"]
        assert linked.stat().st_ino == (out / "images" / "train" / linked.name).stat().st_ino


def test_unknown_or_doubly_named_patients_are_refused(cohort, tmp_path):
    with pytest.raises(ConfigError, match="--test-patients names Z0009, not a patient"):
        convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, tmp_path / "a",
                              workers=1, test_patients=("Z0009",)))
    with pytest.raises(ConfigError, match="both name A0001"):
        ConvertConfig(cohort.dicom_root, cohort.annotation_root, tmp_path / "b",
                      val_patients=("A0001",), test_patients=("A0001",))
    with pytest.raises(ConfigError, match="--folds 9 needs at least 9 patients"):
        convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, tmp_path / "c",
                              workers=1, folds=9))


def test_cli_prints_counts_and_a_warning_per_empty_split(cohort, tmp_path):
    patients = sorted(load_dataset_patients(cohort))
    result = runner.invoke(app, [
        "convert", str(cohort.dicom_root), str(cohort.annotation_root), str(tmp_path / "ds"),
        "--workers", "1", "--split", "1,0,0", "--test-patients",
        f"Lung_Dx-{patients[0]}, {patients[1]}"])
    assert result.exit_code == 0, result.output
    assert "  test   2 patients" in result.output
    assert "val    training images" in result.output
    assert "warning: no val patient: its --split fraction is 0" in result.output.replace(
        "\n", " ")
    manifest = load_dataset(tmp_path / "ds").manifest
    assert manifest["converter"]["args"]["test_patients"] == patients[:2]
    bad = runner.invoke(app, ["convert", str(cohort.dicom_root), str(cohort.annotation_root),
                              str(tmp_path / "x"), "--folds", "1"])
    assert bad.exit_code == 1 and bad.output.count("\n") == 1
    assert "--folds must be >= 2" in bad.output


def load_dataset_patients(cohort) -> list[str]:
    return [p.name for p in cohort.annotation_root.iterdir() if p.is_dir()]


def test_fold_images_are_not_rendered_k_times(folds):
    pool = folds / ".pool" / "images" / "train"
    assert all(os.stat(p).st_nlink >= 2 for p in pool.glob("*.png"))
