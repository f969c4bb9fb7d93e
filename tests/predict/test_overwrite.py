"""predict's OUT under the one rule of output folders: a finished run is refused in one
line naming it, replaced only with --overwrite (a warning says what), and then only the
files predict wrote are deleted."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from support.detectors import SquareFinder
from support.hostile import one_line_error, run_cli
from support.yolo import write_ct_series

from detect.errors import DetectError
from detect.predict.run import PredictConfig, predict

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "weights" / "demo-yolov8n-phantom"
DATE = r"\d{4}-\d\d-\d\d \d\d:\d\d"


def _predict(sources: list[Path], out: Path, monkeypatch: pytest.MonkeyPatch, **options):
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: SquareFinder())
    return predict(PredictConfig(sources=tuple(sources), weights=RUN, out=out, device="cpu",
                                 workers=1, save=("json", "voc", "png"), **options))


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
            if p.is_file() and p.name != ".lock"}


def test_a_finished_run_is_replaced_only_with_overwrite(tmp_path, monkeypatch, caplog):
    first = write_ct_series(tmp_path / "a", slices=2, patient_id="Lung_Dx-A0001")
    write_ct_series(tmp_path / "b", slices=2, patient_id="Lung_Dx-B0002")
    out = tmp_path / "out"
    _predict([tmp_path / "a", tmp_path / "b"], out, monkeypatch)
    mine = out / "voc" / "notes.txt"
    mine.write_text("mine")
    before = _files(out)
    with pytest.raises(DetectError) as refused:
        _predict([tmp_path / "b"], out, monkeypatch)
    assert re.fullmatch(rf"{re.escape(str(out))} holds the predictions of {DATE} \(model "
                        rf"{re.escape(str(RUN))}\); pass --overwrite to replace it, or "
                        rf"another --out", str(refused.value)), str(refused.value)
    assert _files(out) == before
    line = one_line_error(run_cli("predict", tmp_path / "b", "--weights", RUN, "--out", out,
                                  "--device", "cpu"), "pass --overwrite")
    assert line.startswith(f"error: {out} holds the predictions of ")
    assert _files(out) == before
    with caplog.at_level(logging.WARNING):
        _predict([tmp_path / "b"], out, monkeypatch, overwrite=True)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("replacing")]
    assert len(said) == 1 and re.fullmatch(
        rf"replacing the predictions of {DATE} \(model {re.escape(str(RUN))}\) in "
        rf"{re.escape(str(out))}: its \d+ files deleted", said[0]), said
    after = _files(out)
    assert not [k for k in after if "A0001" in k]  # the old run's files are gone
    assert [k for k in after if k.startswith("voc/B0002/")]
    assert mine.read_text() == "mine" and first  # the user's file stays


def test_overwrite_never_takes_someone_elses_folder(tmp_path, monkeypatch):
    write_ct_series(tmp_path / "scans", slices=2)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "report.docx").write_bytes(b"mine")
    with pytest.raises(DetectError, match="not written by detect predict"):
        _predict([tmp_path / "scans"], theirs, monkeypatch, overwrite=True)
    assert [p.name for p in theirs.iterdir()] == ["report.docx"]
