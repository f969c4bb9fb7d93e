"""detect predict URL against a real Orthanc with its DICOMweb plugin, started on
127.0.0.1 and a free port for these tests (skipped, saying how to install it, when
Orthanc is absent): a study by UID gives what the same files give from a folder; --push
stores one SR and a re-run none; a patient query; authentication."""

from __future__ import annotations

import base64
import csv
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from support.detectors import SquareFinder
from support.dicomweb import Orthanc, loopback_only, running_orthanc
from support.yolo import write_ct_series
from typer.testing import CliRunner

from detect.cli import app
from detect.dicomweb.config import ServerConfig
from detect.predict.dicomweb import DicomwebSelection
from detect.predict.run import PredictConfig, predict
from detect.predict.sr_read import read_sr
from detect.predictions import read_predictions
from detect.shipped import real_sample, real_weights

runner = CliRunner()
PHANTOM = "Lung_Dx-B0001"


def phantom_study(folder: Path) -> list[Path]:
    """A CT series of 4 slices (patient B0001) and, in the same study, a PET series."""
    ct = write_ct_series(folder / "ct", patient_id=PHANTOM, slices=4,
                         series_uid="1.2.826.0.1.3680043.99.1")
    pet = []
    for number, path in enumerate(ct[:2]):
        ds = pydicom.dcmread(path)
        ds.Modality = "PT"
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.99.2"
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.99.2.{number + 1}"
        target = folder / "pet" / f"{number}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target)
        pet.append(target)
    return ct + pet


def sample_files() -> list[Path]:
    return sorted(real_sample().dicom_root.rglob("*.dcm"))


def study_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """One Orthanc for the read-only tests: the real sample and the phantom study."""
    folder = tmp_path_factory.mktemp("orthanc")
    with running_orthanc(folder / "server") as server:
        server.store(sample_files())
        server.store(phantom_study(folder / "phantom"))
        yield server


@pytest.fixture
def fake_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: SquareFinder())


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_study_by_uid_gives_what_its_files_give_from_a_folder(
        archive: Orthanc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = loopback_only(monkeypatch)
    weights = real_weights()
    study = study_of(sample_files()[0])
    selection = DicomwebSelection(ServerConfig(archive.url), studies=(study,))
    common = {"weights": weights, "save": ("json", "sr"), "device": "cpu", "workers": 1}
    web = predict(PredictConfig(sources=(), dicomweb=selection, out=tmp_path / "web", **common))
    folder = predict(PredictConfig(sources=(real_sample().dicom_root,), out=tmp_path / "dir",
                                   **common))
    assert attempts == []
    assert (web.slices, web.series, web.detections) == (folder.slices, folder.series,
                                                        folder.detections)
    # the count is the shipped model's (4 boxes at its operating point since 2026-12-07)
    assert (folder.slices, folder.series) == (30, 1) and folder.detections > 0
    assert web.skipped == folder.skipped == {}
    by_sop = {}
    for record in read_predictions(tmp_path / "dir" / "predictions.json"):
        by_sop.setdefault(record.sop_instance_uid, []).append(record)
    got = read_predictions(tmp_path / "web" / "predictions.json")
    assert len(got) == sum(len(v) for v in by_sop.values())
    for record in got:
        twin = min(by_sop[record.sop_instance_uid],
                   key=lambda r: sum(abs(a - b) for a, b in zip(r.xyxy, record.xyxy)))
        assert record.xyxy == pytest.approx(twin.xyxy, abs=1e-3)
        assert record.score == pytest.approx(twin.score, abs=1e-5)
    web_slices = {r["sop_instance_uid"]: r for r in _rows(tmp_path / "web" / "slices.csv")}
    dir_slices = {r["sop_instance_uid"]: r for r in _rows(tmp_path / "dir" / "slices.csv")}
    assert web_slices.keys() == dir_slices.keys()
    for sop, row in web_slices.items():
        assert row["path"] == f"{archive.url}/studies/{study}/series/" \
            f"{row['series_instance_uid']}/instances/{sop}"
        assert {k: v for k, v in row.items() if k != "path"} == \
            {k: v for k, v in dir_slices[sop].items() if k != "path"}
    assert _rows(tmp_path / "web" / "summary.csv") == _rows(tmp_path / "dir" / "summary.csv")
    (web_sr,) = (tmp_path / "web" / "sr").rglob("*.dcm")
    (dir_sr,) = (tmp_path / "dir" / "sr").rglob("*.dcm")
    assert read_sr(web_sr) == read_sr(dir_sr)  # same UIDs (derived), same findings


def test_push_stores_one_sr_and_a_second_run_none(
        tmp_path: Path, fake_detector: None, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = loopback_only(monkeypatch)
    with running_orthanc(tmp_path / "server") as server:
        server.store(phantom_study(tmp_path / "phantom"))
        before = server.count()
        args = ["predict", server.url, "--patient", PHANTOM, "--weights",
                str(real_weights()), "--device", "cpu", "--push"]
        first = runner.invoke(app, [*args, "--out", str(tmp_path / "one")])
        assert first.exit_code == 0, first.output
        assert "pushed 1 SR(s)" in first.output and "0 already there" in first.output
        assert server.count() == before + 1
        assert server.modalities() == ["CT", "PT", "SR"]
        (written,) = (tmp_path / "one" / "sr").rglob("*.dcm")
        stored = server.call("GET", "/instances?expand")
        sr = [i for i in stored if i["MainDicomTags"]["SOPInstanceUID"]
              == str(pydicom.dcmread(written).SOPInstanceUID)]
        assert len(sr) == 1
        assert server.call("GET", f"/instances/{sr[0]['ID']}/tags?simplify")[
            "StudyInstanceUID"] == study_of(tmp_path / "phantom" / "ct" / "slice000.dcm")
        second = runner.invoke(app, [*args, "--out", str(tmp_path / "two")])
        assert second.exit_code == 0, second.output
        assert "pushed 0 SR(s)" in second.output and "1 already there" in second.output
        assert server.count() == before + 1
    assert attempts == []


def test_a_patient_query_reads_that_patients_ct_only(
        archive: Orthanc, tmp_path: Path, fake_detector: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)
    done = runner.invoke(app, ["predict", archive.url, "--patient", PHANTOM, "--weights",
                               str(real_weights()), "--device", "cpu", "--out",
                               str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    assert "predicted 4 slices of 1 CT series" in done.output
    slices = _rows(tmp_path / "out" / "slices.csv")
    assert {r["patient_id"] for r in slices} == {"B0001"}
    (pet,) = _rows(tmp_path / "out" / "skipped.csv")
    assert pet["reason"] == "pet" and "not fetched" in pet["detail"]
    assert pet["path"].endswith("/series/1.2.826.0.1.3680043.99.2")
    nobody = runner.invoke(app, ["predict", archive.url, "--patient", "Nobody", "--weights",
                                 str(real_weights()), "--out", str(tmp_path / "none")])
    assert nobody.exit_code == 1
    assert nobody.output.strip().splitlines() == [
        f"error: {archive.url} has no study of patient 'Nobody' (QIDO-RS "
        f"studies?PatientID=...); check the ID"]
    assert not (tmp_path / "none").exists()


def test_authentication_right_wrong_and_the_password_shown_nowhere(
        tmp_path: Path, fake_detector: None, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    loopback_only(monkeypatch)
    caplog.set_level(logging.DEBUG)
    password = f"pw-{secrets.token_hex(8)}"
    with running_orthanc(tmp_path / "server", users={"alice": password}) as server:
        server.store(phantom_study(tmp_path / "phantom"))
        args = ["predict", server.url, "--patient", PHANTOM, "--weights",
                str(real_weights()), "--device", "cpu", "--save", "json,voc,sr"]
        outputs = []

        monkeypatch.setenv("DETECT_DICOMWEB_USER", "alice")
        monkeypatch.setenv("DETECT_DICOMWEB_PASSWORD", "wrong-" + password)
        wrong = runner.invoke(app, [*args, "--out", str(tmp_path / "wrong")])
        outputs.append(wrong.output)
        assert wrong.exit_code == 1
        assert wrong.output.strip().splitlines() == [
            f"error: {server.url} answered 401 Unauthorized to GET studies?limit=1: the "
            f"credentials from the environment were refused"]
        assert not (tmp_path / "wrong").exists()

        monkeypatch.delenv("DETECT_DICOMWEB_PASSWORD")
        monkeypatch.delenv("DETECT_DICOMWEB_USER")
        none = runner.invoke(app, [*args, "--out", str(tmp_path / "none")])
        outputs.append(none.output)
        assert none.exit_code == 1 and "401" in none.output
        assert "wants credentials (none given" in none.output

        monkeypatch.setenv("DETECT_DICOMWEB_USER", "alice")
        monkeypatch.setenv("DETECT_DICOMWEB_PASSWORD", password)
        right = runner.invoke(app, ["-v", *args, "--out", str(tmp_path / "right")])
        outputs.append(right.output)
        assert right.exit_code == 0, right.output
        monkeypatch.delenv("DETECT_DICOMWEB_PASSWORD")
        monkeypatch.delenv("DETECT_DICOMWEB_USER")

        auth = tmp_path / "auth.env"
        auth.write_text(f"DETECT_DICOMWEB_USER=alice\nDETECT_DICOMWEB_PASSWORD={password}\n")
        os.chmod(auth, 0o644)
        shared = runner.invoke(app, [*args, "--auth-file", str(auth), "--out",
                                     str(tmp_path / "shared")])
        outputs.append(shared.output)
        assert shared.exit_code == 1 and f"chmod 600 {auth}" in shared.output
        os.chmod(auth, 0o600)
        private = runner.invoke(app, [*args, "--auth-file", str(auth), "--out",
                                      str(tmp_path / "private")])
        outputs.append(private.output)
        assert private.exit_code == 0, private.output
    basic = base64.b64encode(f"alice:{password}".encode()).decode()
    for text in [*outputs, caplog.text]:
        assert password not in text and basic not in text
    for path in (tmp_path / "right").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert password.encode() not in data and basic.encode() not in data, path
