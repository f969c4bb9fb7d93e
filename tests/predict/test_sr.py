"""detect predict --save sr: one TID 1500 DICOM SR per CT series, read back with highdicom,
and checked by dicom3tools' dciodvfy when it is installed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from support.detectors import SquareFinder
from support.realdata import REALDATA_ROOT
from support.yolo import NetGuard, write_ct_series

from detect.predict.run import PredictConfig, predict
from detect.predict.sr import HISTOLOGY_CONCEPTS, SrDocument, read_sr
from detect.predictions import Prediction, histology_argmax, read_predictions

REALDATA = REALDATA_ROOT / "lung-pet-ct-dx-A0002"
DCIODVFY = shutil.which("dciodvfy")
needs_dciodvfy = pytest.mark.skipif(DCIODVFY is None, reason="dicom3tools' dciodvfy absent")


def _predict(tiny_run, sources: Path, out: Path, monkeypatch, *, fake: bool = True,
             conf: float = 0.25) -> list[Prediction]:
    if fake:
        monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: SquareFinder())
    result, _ = tiny_run
    with NetGuard(monkeypatch) as guard:
        predict(PredictConfig(sources=(sources,), weights=result.run_dir, out=out, conf=conf,
                              save=("json", "sr"), device="cpu", workers=1))
    assert guard.attempts == []
    return read_predictions(out / "predictions.json")


def _srs(out: Path) -> dict[str, tuple[Path, SrDocument]]:
    documents = {}
    for path in sorted((out / "sr").rglob("*.dcm")):
        document = read_sr(path)
        (series,) = document.referenced_series
        documents[series] = (path, document)
    return documents


def _lesions_of(out: Path, series: str) -> list[dict]:
    document = json.loads((out / "lesions.json").read_text())
    (entry,) = [s for s in document["series"] if s["series_instance_uid"] == series]
    return entry["lesions"]


def _check_round_trip(predictions: list[Prediction], document: SrDocument,
                      lesions: list[dict]) -> None:
    """Each finding paired with its record by slice and box (not by position), and the
    findings grouped as lesions.json groups the boxes: one tracking identifier and UID per
    lesion, its diameter and extent on each of its groups."""
    assert len(document.findings) == len(predictions)
    pool = list(predictions)
    for f in document.findings:
        p = next(q for q in pool if q.sop_instance_uid == f.sop_instance_uid
                 and f.xyxy == pytest.approx(q.xyxy, abs=1e-3)  # FL data, 3-decimal JSON
                 and f.score == pytest.approx(q.score, abs=1e-6))
        pool.remove(p)
        letter = histology_argmax(p.histology) or (
            p.label if p.label in HISTOLOGY_CONCEPTS else None)
        assert f.finding == letter
        if p.histology is None:
            assert f.histology is None
        else:
            assert f.histology == pytest.approx(p.histology, abs=1e-6)
    groups: dict[str, list] = {}
    for f in document.findings:
        groups.setdefault(f.tracking_id, []).append(f)
    assert sorted(groups) == sorted(f"lesion {x['lesion']}" for x in lesions)
    assert len({f.tracking_uid for f in document.findings}) == len(lesions)
    for lesion in lesions:
        found = groups[f"lesion {lesion['lesion']}"]
        assert len({f.tracking_uid for f in found}) == 1
        assert sorted(f.sop_instance_uid for f in found) == sorted(
            b["sop_instance_uid"] for b in lesion["boxes"])
        for f in found:
            for value, expected in ((f.diameter_mm, lesion["longest_axial_diameter_mm"]),
                                    (f.extent_mm, lesion["craniocaudal_extent_mm"])):
                assert value == pytest.approx(expected, abs=1e-3)


def test_sr_round_trips_every_box_reference_and_uid(tiny_run, tmp_path, monkeypatch):
    first = write_ct_series(tmp_path / "in" / "a", patient_id="Lung_Dx-A0001", slices=3)
    second = write_ct_series(tmp_path / "in" / "g", patient_id="Lung_Dx-G0002", slices=2,
                             square=(30, 8))
    out = tmp_path / "out"
    predictions = _predict(tiny_run, tmp_path / "in", out, monkeypatch)
    assert len(predictions) == 5  # one square per slice
    documents = _srs(out)
    for paths, patient in ((first, "A0001"), (second, "G0002")):
        source = pydicom.dcmread(paths[0])
        path, document = documents[source.SeriesInstanceUID]
        assert path == out / "sr" / patient / f"{source.SeriesInstanceUID}.dcm"
        assert document.study_instance_uid == source.StudyInstanceUID
        assert document.patient_id == source.PatientID
        assert document.series_instance_uid != source.SeriesInstanceUID
        assert document.sop_instance_uid not in {pydicom.dcmread(p).SOPInstanceUID
                                                 for p in paths}
        assert sorted(document.evidence) == sorted(pydicom.dcmread(p).SOPInstanceUID
                                                   for p in paths)  # every slice read
        mine = [p for p in predictions if p.series_instance_uid == source.SeriesInstanceUID]
        _check_round_trip(mine, document, _lesions_of(out, source.SeriesInstanceUID))
        sr = pydicom.dcmread(path)
        assert (sr.Modality, sr.SOPClassUID) == ("SR", "1.2.840.10008.5.1.4.1.1.88.34")
        assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
        assert (sr.CompletionFlag, sr.VerificationFlag) == ("COMPLETE", "UNVERIFIED")
    uids = {d.series_instance_uid for _, d in documents.values()}
    assert len(documents) == len(uids) == 2


def test_a_series_without_findings_gets_no_report(tiny_run, tmp_path, monkeypatch):
    write_ct_series(tmp_path / "in" / "empty", slices=2, square=None)
    found = write_ct_series(tmp_path / "in" / "found", patient_id="Lung_Dx-B0003", slices=1)
    out = tmp_path / "out"
    assert len(_predict(tiny_run, tmp_path / "in", out, monkeypatch)) == 1
    assert list(_srs(out)) == [pydicom.dcmread(found[0]).SeriesInstanceUID]


def _dciodvfy_errors(path: Path) -> list[str]:
    assert DCIODVFY is not None
    done = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    lines = (done.stdout + done.stderr).splitlines()
    assert any("Comprehensive3DSR" in line for line in lines), lines  # it did check the IOD
    return [line for line in lines if line.startswith("Error")]


@needs_dciodvfy
def test_dciodvfy_finds_no_error(tiny_run, tmp_path, monkeypatch):
    write_ct_series(tmp_path / "in", slices=2)
    out = tmp_path / "out"
    assert len(_predict(tiny_run, tmp_path / "in", out, monkeypatch)) == 2
    for path in (out / "sr").rglob("*.dcm"):
        assert _dciodvfy_errors(path) == []


@pytest.mark.skipif(not REALDATA.is_dir(), reason="real Lung-PET-CT-Dx sample not present")
def test_sr_of_the_real_sample_with_the_trained_run(tiny_run, tmp_path, monkeypatch):
    """Real TCIA headers (their patient and study modules) and the session's YOLO run."""
    out = tmp_path / "out"
    predictions = _predict(tiny_run, REALDATA, out, monkeypatch, fake=False, conf=0.001)
    documents = _srs(out)
    assert len(documents) == 2 and len(predictions) > 0
    for series, (path, document) in documents.items():
        source = next(p for p in REALDATA.rglob("*.dcm")
                      if pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID == series)
        header = pydicom.dcmread(source, stop_before_pixels=True)
        sr = pydicom.dcmread(path)
        for keyword in ("PatientID", "PatientName", "PatientSex", "StudyInstanceUID",
                        "StudyDate", "StudyTime", "StudyDescription"):
            assert sr.get(keyword) == header.get(keyword), keyword
        assert len(document.evidence) == 30
        _check_round_trip([p for p in predictions if p.series_instance_uid == series], document,
                          _lesions_of(out, series))
        if DCIODVFY is not None:
            assert _dciodvfy_errors(path) == []
