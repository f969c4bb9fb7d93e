"""export's OUT under the one rule of output folders (no model needed): an export is
refused naming it, replaced only with --overwrite (a warning says which) by deleting the
files export writes; a training run's folder or someone else's is never used."""

from __future__ import annotations

import json
import logging
import re

import pytest

from detect.errors import OutputFolderError
from detect.export.outdir import FILES, choose_export_out

DATE = r"\d{4}-\d\d-\d\d \d\d:\d\d"


def _export(folder):
    folder.mkdir()
    record = {"format": "onnx", "file": "model.onnx", "sha256": "ab" * 32,
              "source": {"run": "/runs/yolov8/y8s", "weights": "/runs/yolov8/y8s/best.pt"}}
    (folder / "model.json").write_text(json.dumps({"family": "yolov8", "export": record}))
    for name in ("model.onnx", "README.md", "CARD.md"):
        (folder / name).write_text(name)
    (folder / "notes.txt").write_text("mine")
    return folder


def test_an_export_is_replaced_only_with_overwrite(tmp_path, caplog):
    out = _export(tmp_path / "export-onnx")
    with pytest.raises(OutputFolderError) as refused:
        choose_export_out(out, "torchscript")
    assert re.fullmatch(
        rf"{re.escape(str(out))} holds the onnx export of {DATE} \(of /runs/yolov8/y8s, "
        rf"model.onnx sha256 abababababab\); pass --overwrite to replace it, or another "
        rf"--out", str(refused.value)), str(refused.value)
    assert sorted(p.name for p in out.iterdir()) == ["CARD.md", "README.md", "model.json",
                                                     "model.onnx", "notes.txt"]
    with caplog.at_level(logging.WARNING):
        assert choose_export_out(out, "torchscript", overwrite=True) == out
    said = [r.getMessage() for r in caplog.records]
    assert any(re.fullmatch(rf"replacing the onnx export of {DATE} \(.*\) in "
                            rf"{re.escape(str(out))}: its 4 files deleted", s) for s in said)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # export's files only
    assert set(FILES) >= {"model.onnx", "model.json", "README.md", "CARD.md"}


def test_a_training_run_or_someone_elses_folder_is_never_used(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.json").write_text(json.dumps({"family": "yolov8", "status": "complete"}))
    with pytest.raises(OutputFolderError, match=r"did not write \(a training run"):
        choose_export_out(run, "onnx", overwrite=True)
    assert (run / "model.json").is_file()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "README.md").write_text("mine")
    with pytest.raises(OutputFolderError, match="not written by detect export"):
        choose_export_out(theirs, "onnx", overwrite=True)
    assert (theirs / "README.md").read_text() == "mine"
    fresh = choose_export_out(tmp_path / "new", "onnx")
    assert fresh.is_dir() and not list(fresh.iterdir())
