"""predict's sources: linked folders, link loops, decompression bombs and CT slices
without rescale are counted skips (skipped.csv), never a traceback."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pydicom
from support.detectors import SquareFinder
from support.hostile import new_uid, rewrite
from support.yolo import write_ct_series

from detect.predict.run import PredictConfig, predict
from detect.predict.sources import scan_sources


def _linked_folder(tmp_path: Path) -> tuple[Path, list[Path]]:
    data = tmp_path / "other-disk"
    slices = write_ct_series(data / "p1", slices=3)
    source = tmp_path / "scans"
    source.mkdir()
    (source / "p1").symlink_to(data / "p1", target_is_directory=True)
    (source / "ring.dcm").symlink_to(source / "ring.dcm")
    (source / "gone.dcm").symlink_to(tmp_path / "nothing.dcm")
    (source / "p1-again").symlink_to(data / "p1", target_is_directory=True)
    (data / "p1" / "up").symlink_to(source, target_is_directory=True)
    return source, slices


def test_linked_folders_and_link_loops_are_walked_once_and_reported(tmp_path):
    source, _ = _linked_folder(tmp_path)
    scan = scan_sources([source])
    assert [len(s.slices) for s in scan.series] == [3]
    assert {h.path.parent for h in scan.series[0].slices} == {source / "p1"}
    reasons = sorted((Path(s.path).relative_to(source).as_posix(), s.reason)
                     for s in scan.skipped)
    assert reasons == [
        ("gone.dcm", "dangling-link"),
        ("p1-again", "duplicate-path"),
        ("p1/up", "symlink-loop"),
        ("ring.dcm", "symlink-loop"),
    ]


def test_bombs_and_slices_without_rescale_are_skipped_before_decoding(bombs, tmp_path):
    source = tmp_path / "scans"
    slices = write_ct_series(source / "ct", slices=3)
    shutil.copyfile(bombs.rle, source / "rle.dcm")
    shutil.copyfile(bombs.deflate, source / "deflate.dcm")
    rewrite(slices[1], RescaleSlope=None, RescaleIntercept=None)
    scan = scan_sources([source])
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    assert reasons == {"rle.dcm": "image-too-large", "deflate.dcm": "image-too-large",
                       slices[1].name: "missing-rescale"}
    assert [len(s.slices) for s in scan.series] == [2]


def test_predict_lists_every_skip_in_skipped_csv(tiny_run, bombs, tmp_path, monkeypatch):
    source, _ = _linked_folder(tmp_path)
    shutil.copyfile(bombs.rle, source / "rle.dcm")
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: SquareFinder())
    result, _ = tiny_run
    summary = predict(PredictConfig(sources=(source,), weights=result.run_dir,
                                    out=tmp_path / "out", save=("json",), device="cpu",
                                    workers=1))
    assert summary.slices == 3
    with open(tmp_path / "out" / "skipped.csv", newline="") as handle:
        rows = {Path(r["path"]).name: r["reason"] for r in csv.DictReader(handle)}
    assert rows == {"gone.dcm": "dangling-link", "p1-again": "duplicate-path",
                    "up": "symlink-loop", "ring.dcm": "symlink-loop",
                    "rle.dcm": "image-too-large"}
    assert summary.skipped == {"dangling-link": 1, "duplicate-path": 1, "image-too-large": 1,
                               "symlink-loop": 2}


def test_a_deflated_slice_within_the_limit_still_reads(tmp_path):
    from detect.io.dicom import read_hu

    (plain,) = write_ct_series(tmp_path / "in", slices=1)
    ds = pydicom.dcmread(plain)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = new_uid("deflated")
    deflated = tmp_path / "in" / "deflated.dcm"
    ds.save_as(deflated, enforce_file_format=True)
    scan = scan_sources([tmp_path / "in"])
    assert scan.skipped == () and len(scan.series[0].slices) == 2
    assert (read_hu(deflated) == read_hu(plain)).all()


def test_predict_max_pixels_skips_larger_slices_and_a_bad_value_is_one_line(tiny_run, tmp_path,
                                                                           monkeypatch):
    from typer.testing import CliRunner

    from detect.cli import app

    write_ct_series(tmp_path / "small", slices=2, size=64)
    write_ct_series(tmp_path / "large", patient_id="Lung_Dx-A0002", slices=2, size=128)
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: SquareFinder())
    result, _ = tiny_run
    summary = predict(PredictConfig(sources=(tmp_path / "small", tmp_path / "large"),
                                    weights=result.run_dir, out=tmp_path / "out",
                                    save=("json",), device="cpu", workers=1,
                                    max_pixels=64 * 64))
    assert summary.slices == 2 and summary.skipped == {"image-too-large": 2}
    done = CliRunner().invoke(app, ["predict", str(tmp_path / "small"), "--weights",
                                    str(result.run_dir), "--max-pixels", "0"])
    assert done.exit_code == 1
    assert "--max-pixels must be >= 1" in done.output and "Traceback" not in done.output
