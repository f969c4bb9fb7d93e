"""detect download --dicomweb: training data from a PACS (a real Orthanc on 127.0.0.1),
in the IDC path's layout and manifest, resumed like it, converted like the original."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from support.dicomweb import Orthanc, loopback_only, running_orthanc
from typer.testing import CliRunner

from detect.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def pacs(cohort, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """An Orthanc holding every DICOM file of the session's phantom cohort."""
    with running_orthanc(tmp_path_factory.mktemp("pacs")) as server:
        server.store(sorted(cohort.dicom_root.rglob("*.dcm")))
        yield server


def coco_images(dataset: Path) -> dict[str, set[tuple[str, int]]]:
    """Split → {(sop_instance_uid, number of boxes)} from the dataset's COCO files."""
    result = {}
    for coco_file in sorted((dataset / "coco").glob("*.json")):
        coco = json.loads(coco_file.read_text())
        boxes: dict[int, int] = defaultdict(int)
        for annotation in coco["annotations"]:
            boxes[annotation["image_id"]] += 1
        result[coco_file.stem] = {(image["sop_instance_uid"], boxes[image["id"]])
                                  for image in coco["images"]}
    return result


def _patients(cohort) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted({str(pydicom.dcmread(p, stop_before_pixels=True).PatientID)
                   for p in cohort.dicom_root.rglob("*.dcm")})


def test_a_pacs_download_converts_like_the_original(
        pacs: Orthanc, cohort, dataset: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from detect.convert import convert
    from detect.convert.config import ConvertConfig

    attempts = loopback_only(monkeypatch)
    out = tmp_path / "pacs"
    patients = [arg for p in _patients(cohort) for arg in ("--patient", p)]
    done = runner.invoke(app, ["download", str(out), "--dicomweb", pacs.url, *patients,
                               "--modality", "CT,PT"])
    assert done.exit_code == 0, done.output
    files = sorted(out.rglob("*.dcm"))
    assert f"downloaded {len(files)} files" in done.stdout
    for path in files:  # OUT/<collection>/<PatientID>/<Study>/<Series>/<SOP>.dcm
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert path.relative_to(out).parts == (
            "lung_pet_ct_dx", ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID,
            f"{ds.SOPInstanceUID}.dcm")
    manifest = json.loads((out / "idc-manifest.json").read_text())
    assert manifest["format"] == "detect-idc-download" and manifest["endpoint"] == pacs.url
    assert manifest["totals"]["instances"] == len(files)
    assert manifest["selection"]["patients"] == _patients(cohort)

    converted = convert(ConvertConfig(out / "lung_pet_ct_dx", cohort.annotation_root,
                                      tmp_path / "dataset", workers=1))
    original = coco_images(dataset)
    assert converted.images == sum(len(images) for images in original.values()) > 0
    assert coco_images(tmp_path / "dataset") == original
    assert attempts == []


def test_a_rerun_fetches_only_what_is_missing(pacs: Orthanc, cohort, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)
    patient = _patients(cohort)[0]
    out = tmp_path / "pacs"
    args = ["download", str(out), "--dicomweb", pacs.url, "--patient", patient]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    files = sorted(out.rglob("*.dcm"))
    kept = {p: p.stat().st_mtime_ns for p in files[1:]}
    files[0].unlink()
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "downloaded 1 files" in second.stdout and files[0].is_file()
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in kept.items())
    third = runner.invoke(app, args)
    assert "downloaded 0 files" in third.stdout


def test_dicomweb_options_without_a_server_or_a_selection_are_one_line(tmp_path: Path) -> None:
    for args, expected in (
        (["--study", "1.2.3"], "pass --dicomweb URL"),
        (["--dicomweb", "http://127.0.0.1:9/dicom-web"], "needs --study or --patient"),
        (["--dicomweb", "http://127.0.0.1:9/dicom-web", "--letters", "A"], "--letters"),
        (["--dicomweb", "http://127.0.0.1:9/dicom-web", "--study", "../x"], "DICOM UID"),
    ):
        done = runner.invoke(app, ["download", str(tmp_path / "out"), *args])
        assert done.exit_code == 1, done.output
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("error: ") and expected in line, line
    assert not (tmp_path / "out").exists()
