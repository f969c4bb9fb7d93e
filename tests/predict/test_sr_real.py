"""predict --save sr on every series of the real patients, and on a hostile source, writes
SRs that dicom3tools' dciodvfy finds no error in (it skips visibly when dciodvfy or the
real data is absent); the SR copies only source attributes detect validated."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from support.detectors import SquareFinder
from support.realdata import PATIENTS, real_patient
from support.yolo import NetGuard, write_ct_series

from detect.predict.run import PredictConfig, predict
from detect.predict.sr import read_sr
from detect.predictions import read_predictions

DCIODVFY = shutil.which("dciodvfy")
needs_dciodvfy = pytest.mark.skipif(
    DCIODVFY is None, reason="dicom3tools' dciodvfy absent (apt-get install dicom3tools)")


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines dciodvfy prints for ``path`` (it must have checked the SR IOD)."""
    assert DCIODVFY is not None
    done = subprocess.run([DCIODVFY, "-new", str(path)], capture_output=True, text=True,
                          timeout=120)
    lines = (done.stdout + done.stderr).splitlines()
    assert any("Comprehensive3DSR" in line for line in lines), lines[:5]
    return [line for line in lines if line.startswith("Error")]


def _predict(run: Path, source: Path, out: Path, monkeypatch, *, fake: bool = True,
             conf: float = 0.25) -> None:
    if fake:  # one box per slice, at once: every series gets findings quickly
        monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: SquareFinder())
    with NetGuard(monkeypatch) as guard:
        predict(PredictConfig(sources=(source,), weights=run, out=out, conf=conf,
                              save=("json", "sr"), device="cpu", workers=2))
    assert guard.attempts == []


def _series_of(folder: Path) -> dict[str, int]:
    """SeriesInstanceUID -> number of CT slices, from the headers."""
    counts: dict[str, int] = {}
    for path in folder.rglob("*.dcm"):
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)
        counts[uid] = counts.get(uid, 0) + 1
    return counts


@needs_dciodvfy
@pytest.mark.parametrize("patient", PATIENTS)
def test_every_real_series_gets_a_valid_sr(tiny_run, tmp_path, monkeypatch, patient):
    folder = real_patient(patient) / "Lung-PET-CT-Dx"
    out = tmp_path / "out"
    _predict(tiny_run[0].run_dir, folder, out, monkeypatch)
    expected = _series_of(folder)
    written = sorted((out / "sr").rglob("*.dcm"))
    assert len(written) == len(expected) == 2
    predictions = read_predictions(out / "predictions.json")
    for path in written:
        document = read_sr(path)
        (series,) = document.referenced_series
        assert len(document.evidence) == expected[series]  # every slice read
        # one box per slice, but for those outside the lung field (summary.csv counts them)
        assert len(document.findings) == sum(p.series_instance_uid == series
                                             for p in predictions) > 0
        assert dciodvfy_errors(path) == [], path
        sr = pydicom.dcmread(path)
        assert "ReferencedStudySequence" not in sr  # never copied from the source
        assert sr.PatientID == f"Lung_Dx-{patient}"


@needs_dciodvfy
def test_a_real_series_with_the_trained_run(tiny_run, tmp_path, monkeypatch):
    """The session's YOLO run on the 56-slice GE series of B0021 (its headers carry a
    ReferencedStudySequence)."""
    series = next((real_patient("B0021") / "Lung-PET-CT-Dx").glob("*/*/4.000000-*"))
    out = tmp_path / "out"
    _predict(tiny_run[0].run_dir, series, out, monkeypatch, fake=False, conf=0.001)
    predictions = read_predictions(out / "predictions.json")
    (path,) = sorted((out / "sr").rglob("*.dcm"))
    assert len(read_sr(path).findings) == len(predictions) > 0
    assert dciodvfy_errors(path) == []


ODD = {
    "PatientName": "Ünïcødé^Tëst=山田^太郎",  # UTF-8 and a second component group
    "StudyDescription": "<script>alert(1)</script> & 'quotes' \"too\"",
    "AccessionNumber": "ACC-12345678901234567890",  # longer than SH's 16
    "StudyDate": "2024-01-02",  # not a DA
    "PatientSex": "male",  # not M, F or O
    "ReferringPhysicianName": "Dr^" + "x" * 70,  # a component longer than PN's 64
    "StudyID": "line\nbreak",  # a control character
    "PatientAge": "45",  # not an AS
}


def _hostile_series(folder: Path, odd: bool) -> list[Path]:
    """Slices as the Philips series carry them (a ReferencedStudySequence item without its
    class UID, another patient ID sequence, a private tag) and, with ``odd``, odd or
    invalid patient/study values."""
    paths = write_ct_series(folder, patient_id="Lung_Dx-A0001", slices=2)
    for path in paths:
        ds = pydicom.dcmread(path)
        item = Dataset()
        item.ReferencedSOPInstanceUID = ds.StudyInstanceUID
        ds.ReferencedStudySequence = [item]
        other = Dataset()
        other.PatientID = "\\".join(["x"] * 3)
        ds.OtherPatientIDsSequence = [other]
        ds.add_new(0x00091010, "LO", "private vendor value")
        if odd:
            for keyword, value in ODD.items():
                setattr(ds, keyword, value)
            ds.SpecificCharacterSet = "ISO_IR 192"
        ds.save_as(path, enforce_file_format=True)
    return paths


def _hostile_sr(tiny_run, tmp_path: Path, monkeypatch, odd: bool) -> tuple[Path, Dataset]:
    source = _hostile_series(tmp_path / "in", odd)
    out = tmp_path / "out"
    _predict(tiny_run[0].run_dir, tmp_path / "in", out, monkeypatch)
    (path,) = sorted((out / "sr").rglob("*.dcm"))
    assert dciodvfy_errors(path) == []
    sr = pydicom.dcmread(path)
    for keyword in ("ReferencedStudySequence", "OtherPatientIDsSequence"):
        assert keyword not in sr
    assert (0x0009, 0x1010) not in sr
    header = pydicom.dcmread(source[0], stop_before_pixels=True)
    assert sr.PatientID == header.PatientID and sr.StudyInstanceUID == header.StudyInstanceUID
    document = read_sr(path)
    assert len(document.findings) == 2 and document.patient_id == header.PatientID
    return path, sr


@needs_dciodvfy
def test_a_philips_like_source_gives_a_valid_sr(tiny_run, tmp_path, monkeypatch):
    _, sr = _hostile_sr(tiny_run, tmp_path, monkeypatch, odd=False)
    assert sr.Manufacturer == "detect"  # the SR's own equipment, not the scanner's


@needs_dciodvfy
def test_odd_and_invalid_values_give_a_valid_sr(tiny_run, tmp_path, monkeypatch):
    _, sr = _hostile_sr(tiny_run, tmp_path, monkeypatch, odd=True)
    assert str(sr.PatientName) == ODD["PatientName"] and sr.SpecificCharacterSet == "ISO_IR 192"
    assert sr.StudyDescription == ODD["StudyDescription"]
    for keyword in ("AccessionNumber", "StudyDate", "PatientSex", "ReferringPhysicianName",
                    "StudyID"):
        assert sr.get(keyword) in ("", None), keyword  # invalid: Type 2, left empty
    assert "PatientAge" not in sr
