"""predict against silent wrong data and stale results (issue 21, items 1, 3, 4, 9): slices
with implausible HU or geometry are skipped.csv rows, an interrupted run's files never mix
with the next run's, one UID in two different files is predicted on for neither, and a
folder name that is not UTF-8 does not stop the CSVs and SRs being written."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from support.detectors import SquareFinder
from support.hostile import rewrite
from support.yolo import write_ct_series

from detect.errors import DetectError
from detect.predict.run import PredictConfig, predict

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "weights" / "demo-yolov8n-phantom"


class _Interrupted(SquareFinder):
    """SquareFinder that is interrupted (Ctrl-C, or as good as a kill) at its ``stop``-th
    batch."""

    def __init__(self, stop: int) -> None:
        super().__init__()
        self.calls, self.stop = 0, stop

    def predict(self, images, conf):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == self.stop:
            raise KeyboardInterrupt
        return super().predict(images, conf)


def _predict(sources: list[Path], out: Path, monkeypatch: pytest.MonkeyPatch,
             detector: SquareFinder | None = None, **options: object):
    found = detector or SquareFinder()
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: found)
    config = dict(save=("json", "voc", "png"), device="cpu", workers=1, batch=1)
    config.update(options)
    return predict(PredictConfig(sources=tuple(sources), weights=RUN, out=out, **config))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_implausible_slices_are_skipped_rows_not_clean_slices(tmp_path, monkeypatch):
    slices = write_ct_series(tmp_path / "scans", slices=6)
    rewrite(slices[0], RescaleSlope="NaN")
    rewrite(slices[1], RescaleSlope="0")
    rewrite(slices[2], ImageOrientationPatient=["1", "0", "0", "1", "0", "0"])
    ds = pydicom.dcmread(slices[3])  # float pixels with a NaN: fine header, NaN HU
    hu = np.full((64, 64), -800.0, np.float32)
    hu[0, 0] = np.nan
    del ds.PixelData, ds.PixelRepresentation
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 32, 31
    ds.FloatPixelData = hu.tobytes()
    ds.save_as(slices[3], enforce_file_format=True)
    summary = _predict([tmp_path / "scans"], tmp_path / "out", monkeypatch)
    assert summary.slices == 2 and summary.skipped == {"implausible-value": 4}
    rows = {Path(r["path"]).name: r for r in _rows(tmp_path / "out" / "skipped.csv")}
    assert set(rows) == {p.name for p in slices[:4]}
    assert "RescaleSlope" in rows[slices[0].name]["detail"]
    assert "not finite" in rows[slices[3].name]["detail"]


def test_an_interrupted_run_leaves_nothing_the_next_run_mixes_with(tmp_path, monkeypatch):
    # two series: predict writes a series' slices when its last slice is in (its lung
    # field and lesions need them all), so the first is written when the second stops
    first = write_ct_series(tmp_path / "first" / "a", slices=3, patient_id="Lung_Dx-A0001")
    write_ct_series(tmp_path / "first" / "b", slices=3, patient_id="Lung_Dx-A0001")
    write_ct_series(tmp_path / "second", slices=2, patient_id="Lung_Dx-B0002")
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "voc" / "notes.txt"  # a file of the user's, in a folder predict writes
    mine.parent.mkdir()
    mine.write_text("keep me")
    with pytest.raises(DetectError, match="not written by detect predict"):
        _predict([tmp_path / "first"], out, monkeypatch)
    shutil.rmtree(mine.parent)
    # Ctrl-C: the run removes the files it wrote
    with pytest.raises(KeyboardInterrupt):
        _predict([tmp_path / "first"], out, monkeypatch, _Interrupted(stop=5))
    assert not list(out.rglob("*.xml")) and not list(out.rglob("*.png"))
    # killed outright (SIGKILL runs no cleanup): its files stay for the next run to clear
    monkeypatch.setattr("detect.predict.outdir.discard_failed_run", lambda out, ledger: None)
    with pytest.raises(KeyboardInterrupt):
        _predict([tmp_path / "first"], out, monkeypatch, _Interrupted(stop=5))
    stale = sorted(p.name for p in out.rglob("*.xml"))
    assert len(stale) == 3  # the killed run's VOC files are there...
    mine.parent.mkdir(exist_ok=True)
    mine.write_text("keep me")  # ...beside a file of the user's
    summary = _predict([tmp_path / "second"], out, monkeypatch)
    xml = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.xml"))
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert len(xml) == summary.slices_with_findings == 2
    assert len(pngs) == 4  # each XML's image beside it, and the overlays
    assert all(p.startswith(("voc/B0002/", "png/B0002/")) for p in xml + pngs)
    assert {r["patient_id"] for r in _rows(out / "slices.csv")} == {"B0002"}
    assert mine.read_text() == "keep me" and first


def test_a_failed_run_removes_the_folder_it_created(tmp_path, monkeypatch):
    write_ct_series(tmp_path / "scans" / "a", slices=3, patient_id="Lung_Dx-A0001")
    write_ct_series(tmp_path / "scans" / "b", slices=3, patient_id="Lung_Dx-A0001")
    out = tmp_path / "new" / "out"
    with pytest.raises(KeyboardInterrupt):
        _predict([tmp_path / "scans"], out, monkeypatch, _Interrupted(stop=5))
    assert not out.exists()


def test_a_finished_or_foreign_folder_is_refused_and_left_alone(tmp_path, monkeypatch):
    write_ct_series(tmp_path / "scans", slices=2)
    out = tmp_path / "out"
    _predict([tmp_path / "scans"], out, monkeypatch)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(DetectError, match=r"holds the predictions of .* pass --overwrite"):
        _predict([tmp_path / "scans"], out, monkeypatch)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "report.docx").write_bytes(b"mine")
    with pytest.raises(DetectError, match="not written by detect predict"):
        _predict([tmp_path / "scans"], theirs, monkeypatch)
    assert sorted(os.listdir(theirs)) == ["report.docx"]


_HOLD = """
import sys
from pathlib import Path
from detect.io.outlock import hold_out_lock
with hold_out_lock(Path(sys.argv[1]), shard=False, settings="predict", command="detect predict"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_a_folder_another_predict_is_writing_is_refused(tmp_path, monkeypatch):
    write_ct_series(tmp_path / "scans", slices=2)
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(DetectError, match=f"another detect predict \\(pid {holder.pid}\\)"):
            _predict([tmp_path / "scans"], out, monkeypatch)
    finally:
        holder.kill()
        holder.wait(timeout=60)
    assert _predict([tmp_path / "scans"], out, monkeypatch).slices == 2


def test_one_uid_in_two_different_files_is_predicted_for_neither(tmp_path, monkeypatch):
    a = write_ct_series(tmp_path / "scans" / "a", slices=3, patient_id="Lung_Dx-A0001")
    b = write_ct_series(tmp_path / "scans" / "b", slices=3, patient_id="Lung_Dx-G0009")
    uid = str(pydicom.dcmread(b[1], stop_before_pixels=True).SOPInstanceUID)
    rewrite(a[1], SOPInstanceUID=uid)  # another patient's UID, walked first
    shutil.copyfile(b[2], tmp_path / "scans" / "b" / "same-as-2.dcm")  # a true copy
    summary = _predict([tmp_path / "scans"], tmp_path / "out", monkeypatch)
    rows = {Path(r["path"]): r["reason"] for r in _rows(tmp_path / "out" / "skipped.csv")}
    assert {p for p, reason in rows.items() if reason == "uid-conflict"} == {a[1], b[1]}
    duplicates = [p for p, reason in rows.items() if reason == "duplicate"]
    assert len(rows) == 3 and len(duplicates) == 1  # the true copy: read once
    assert duplicates[0] in (b[2], tmp_path / "scans" / "b" / "same-as-2.dcm")
    predicted = {r["sop_instance_uid"] for r in _rows(tmp_path / "out" / "slices.csv")}
    assert uid not in predicted and summary.slices == 4


def test_a_folder_name_that_is_not_utf8_is_written_safely(tmp_path, monkeypatch):
    folder = Path(os.fsdecode(bytes(tmp_path) + b"/scans/pati\xffent"))
    write_ct_series(folder, slices=2)
    Path(os.fsdecode(bytes(tmp_path) + b"/scans/junk\xfe.dcm")).write_bytes(b"not dicom")
    summary = _predict([tmp_path / "scans"], tmp_path / "out", monkeypatch,
                       save=("json", "voc", "sr"))
    assert summary.slices == 2 and summary.slices_with_findings == 2
    slices = _rows(tmp_path / "out" / "slices.csv")
    assert all("pati\\xffent" in r["path"] for r in slices)
    skipped = _rows(tmp_path / "out" / "skipped.csv")
    assert [r["path"].rsplit("/", 1)[-1] for r in skipped] == ["junk\\xfe.dcm"]
    assert len(list((tmp_path / "out" / "sr").rglob("*.dcm"))) == 1
