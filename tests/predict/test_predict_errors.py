"""detect predict: each bad input is one clear line and exit code 1, through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.yolo import write_ct_series
from typer.testing import CliRunner

from detect.cli import app

runner = CliRunner()


@pytest.fixture
def scans(tmp_path: Path) -> Path:
    write_ct_series(tmp_path / "scans", slices=2)
    return tmp_path / "scans"


@pytest.fixture
def run_copy(tiny_run, tmp_path: Path) -> Path:
    result, _ = tiny_run
    run = tmp_path / "run"
    shutil.copytree(result.run_dir, run)
    return run


def _fails(args: list[str], *expected: str) -> str:
    done = runner.invoke(app, ["predict", *args])
    assert done.exit_code == 1, done.output
    lines = done.output.strip().splitlines()
    assert len(lines) == 1, done.output
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def _edit_model_json(run: Path, **changes: object) -> None:
    data = json.loads((run / "model.json").read_text())
    data.update(changes)
    (run / "model.json").write_text(json.dumps(data))


def test_folder_without_dicom(run_copy, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails([str(empty), "--weights", str(run_copy), "--out", str(tmp_path / "o1")], "no files")
    (empty / "a.txt").write_text("x")
    (empty / "b.png").write_bytes(b"\x89PNG")
    _fails([str(empty), "--weights", str(run_copy), "--out", str(tmp_path / "o2")],
           "no DICOM CT series", "2 not-dicom")
    _fails([str(tmp_path / "missing"), "--weights", str(run_copy)], "does not exist")


def test_weights_that_are_not_a_detect_model(scans, run_copy, tmp_path):
    loose = tmp_path / "loose" / "model.pt"
    loose.parent.mkdir()
    shutil.copyfile(run_copy / "weights" / "best.pt", loose)
    _fails([str(scans), "--weights", str(loose)], "not a detect model", "no model.json")
    _fails([str(scans), "--weights", str(tmp_path / "nothing.pt")], "does not exist")
    (run_copy / "weights" / "best.pt").write_bytes(b"not a checkpoint")
    _fails([str(scans), "--weights", str(run_copy), "--out", str(tmp_path / "o")],
           "not a loadable YOLO checkpoint")
    (run_copy / "weights" / "best.pt").unlink()
    _fails([str(scans), "--weights", str(run_copy)], "best.pt is missing")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"format": "detect-dataset"}, "expected format 'detect-model'"),
        ({"version": 7}, "version 7 is not supported"),
        ({"recipe": {"kind": "windows", "windows": []}}, "recipe.slice_offsets must be"),
        ({"recipe": {"kind": "windows", "windows": [], "slice_offsets": [0, 0, 0]}},
         "recipe does not fit"),
        ({"classes": ["tumor"], "class_mode": "tumor"}, "predicts classes"),
        ({"weights": {"best": "../../elsewhere.pt"}}, "inside the run folder"),
    ],
)
def test_model_json_that_does_not_fit(scans, run_copy, tmp_path, changes, expected):
    _edit_model_json(run_copy, **changes)
    _fails([str(scans), "--weights", str(run_copy), "--out", str(tmp_path / "o")], expected)


def test_output_folder_that_cannot_be_written(scans, run_copy, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    _fails([str(scans), "--weights", str(run_copy), "--out", str(blocker / "out")],
           "not writable")
    _fails([str(scans), "--weights", str(run_copy), "--out", str(blocker)], "is a file")


def test_existing_predictions_are_not_overwritten(scans, run_copy, tmp_path):
    out = tmp_path / "out"
    done = runner.invoke(app, ["predict", str(scans), "--weights", str(run_copy), "--out",
                               str(out), "--device", "cpu", "--workers", "1"])
    assert done.exit_code == 0, done.output
    assert "predicted 2 slices of 1 CT series" in done.output
    _fails([str(scans), "--weights", str(run_copy), "--out", str(out)], "holds the predictions of",
           "pass --overwrite")


def test_bad_options(scans, run_copy):
    _fails([str(scans), "--weights", str(run_copy), "--save", "pdf"], "--save",
           "json, voc, png, sr")
    _fails([str(scans), "--weights", str(run_copy), "--conf", "2"], "--conf")
    _fails([str(scans), "--weights", str(run_copy), "--device", "gpu"], "--device")


def test_broken_torchvision_is_one_line_with_the_fix(scans, run_copy, monkeypatch):
    def broken() -> None:
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr("detect.torch_check._probe", broken)
    line = _fails([str(scans), "--weights", str(run_copy)], "torchvision::nms",
                  "pip install torch==2.14.1 torchvision==0.29.1")
    assert "torch 2.14.1" in line
