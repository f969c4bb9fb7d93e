"""The three shared real patients split by name and left out one at a time (skips visibly
when ../shared/realdata is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.realdata import PATIENTS, real_patient

from detect.convert import convert
from detect.convert.config import ConvertConfig
from detect.dataset import load_dataset

#: Annotated slices per patient (each sample's README), one box each.
IMAGES = {"A0002": 18, "B0021": 64, "E0003": 79}


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("real3")
    dicom, annotations = root / "dicom", root / "ann"
    dicom.mkdir()
    annotations.mkdir()
    for short in PATIENTS:
        folder = real_patient(short)
        for patient in (folder / "Lung-PET-CT-Dx").iterdir():
            (dicom / patient.name).symlink_to(patient, target_is_directory=True)
        for patient in (folder / "Annotation").iterdir():
            (annotations / patient.name).symlink_to(patient, target_is_directory=True)
    return dicom, annotations


def test_named_test_and_val_patients(roots, tmp_path):
    dicom, annotations = roots
    summary = convert(ConvertConfig(dicom, annotations, tmp_path / "ds", workers=2,
                                    class_mode="tumor", test_patients=("A0002",),
                                    val_patients=("B0021",)))
    info = load_dataset(tmp_path / "ds")
    assert info.splits == {"train": ["E0003"], "val": ["B0021"], "test": ["A0002"]}
    counts = info.manifest["counts"]
    assert [counts[s]["images"] for s in ("train", "val", "test")] == [79, 64, 18]
    assert [counts[s]["boxes"] for s in ("train", "val", "test")] == [79, 64, 18]
    assert info.manifest["empty_splits"] == {} and summary.datasets[0].warnings == {}
    assert info.manifest["converter"]["args"]["test_patients"] == ["A0002"]


def test_leave_one_patient_out(roots, tmp_path):
    dicom, annotations = roots
    summary = convert(ConvertConfig(dicom, annotations, tmp_path / "loo", workers=2,
                                    class_mode="tumor", folds=3))
    assert len(summary.datasets) == 3
    tested = {}
    for k in (1, 2, 3):
        info = load_dataset(tmp_path / "loo" / f"fold-{k}")
        (held,) = info.splits["test"]
        tested[held] = k
        trained = sorted(set(PATIENTS) - {held})
        assert info.splits["train"] == trained
        counts = info.manifest["counts"]
        assert counts["test"]["images"] == IMAGES[held]
        assert counts["train"]["images"] == sum(IMAGES[p] for p in trained)
        assert counts["val"]["images"] == info.manifest["val_from_train"]["images"] > 0
    assert sorted(tested) == list(PATIENTS)
