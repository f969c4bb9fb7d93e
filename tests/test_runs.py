"""detect.runs: model.json validation, finding weights, run names, metrics.csv."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from detect.errors import RunFolderError
from detect.recipe import DEFAULT_RECIPE, parse_channels
from detect.runs import (
    METRIC_COLUMNS,
    best_epoch,
    check_fits_dataset,
    latest_run,
    read_model_json,
    resolve_weights,
    unique_run_dir,
    validate_model_json,
    write_metrics_csv,
    write_model_json,
)


def _manifest(**changes: Any) -> dict[str, Any]:
    data = {
        "format": "detect-model", "version": 1, "status": "complete", "family": "yolov8",
        "size": "n", "backbone": None, "classes": ["A", "B", "E", "G"],
        "class_mode": "histology", "recipe": DEFAULT_RECIPE.to_dict(), "imgsz": 512,
        "thresholds": {"conf": 0.25, "iou": 0.7}, "metrics": None,
        "weights": {"best": "weights/best.pt", "last": "weights/last.pt"},
    }
    data.update(changes)
    return data


def _run(root: Path, **changes: Any) -> Path:
    (root / "weights").mkdir(parents=True)
    (root / "weights" / "best.pt").write_bytes(b"w")
    (root / "model.json").write_text(json.dumps(_manifest(**changes)))
    return root


def test_a_valid_model_json_reads_back(tmp_path):
    info = read_model_json(_run(tmp_path / "run"))
    assert info.family == "yolov8" and info.classes == ("A", "B", "E", "G")
    assert info.recipe == DEFAULT_RECIPE
    assert (info.imgsz, info.conf, info.iou, info.status) == (512, 0.25, 0.7, "complete")
    assert info.weights_path() == tmp_path / "run" / "weights" / "best.pt"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"format": "yolo"}, "expected format 'detect-model', found 'yolo'"),
        ({"version": 2}, "version 2 is not supported"),
        ({"classes": []}, "classes must be 1 to 100 distinct names"),
        ({"classes": ["A", "A"]}, "classes must be 1 to 100 distinct names"),
        ({"class_mode": "letters"}, "class_mode must be"),
        ({"imgsz": "512"}, r"imgsz must be a multiple of 32 in \[32, 4096\] px, found '512'"),
        ({"recipe": {"kind": "2.5d"}}, "recipe.windows must be a list"),
        ({"weights": {"best": "/etc/passwd"}}, "inside the run folder"),
        ({"weights": {"last": "weights/last.pt"}}, "naming the best weights"),
    ],
)
def test_invalid_model_json_says_what_is_wrong(changes, expected):
    with pytest.raises(RunFolderError, match=expected):
        validate_model_json(_manifest(**changes), Path("model.json"))


def test_missing_key_and_unreadable_file(tmp_path):
    data = _manifest()
    del data["recipe"]
    with pytest.raises(RunFolderError, match="missing 'recipe'"):
        validate_model_json(data, Path("model.json"))
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(RunFolderError, match="unreadable"):
        read_model_json(tmp_path)
    with pytest.raises(RunFolderError, match=r"no model\.json"):
        read_model_json(tmp_path / "elsewhere")


def test_weights_resolve_from_folder_model_json_or_pt(tmp_path):
    run = _run(tmp_path / "run")
    (run / "weights" / "last.pt").write_bytes(b"w")
    assert resolve_weights(run)[1] == run / "weights" / "best.pt"
    assert resolve_weights(run / "model.json")[1] == run / "weights" / "best.pt"
    info, chosen = resolve_weights(run / "weights" / "last.pt")
    assert chosen == run / "weights" / "last.pt" and info.root == run.resolve()
    beside = tmp_path / "flat"
    _run(beside)
    (beside / "model.pt").write_bytes(b"w")
    assert resolve_weights(beside / "model.pt")[0].root == beside.resolve()


def test_weights_that_are_not_a_detect_model(tmp_path):
    stray = tmp_path / "a" / "b" / "c.pt"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"w")
    with pytest.raises(RunFolderError, match="not a detect model"):
        resolve_weights(stray)
    with pytest.raises(RunFolderError, match="does not exist"):
        resolve_weights(tmp_path / "missing.pt")
    run = _run(tmp_path / "run")
    (run / "weights" / "best.pt").unlink()
    with pytest.raises(RunFolderError, match=r"best\.pt is missing"):
        resolve_weights(run)


def test_model_must_fit_the_dataset(tmp_path):
    info = read_model_json(_run(tmp_path / "run"))
    check_fits_dataset(info, ["A", "B", "E", "G"], DEFAULT_RECIPE)
    with pytest.raises(RunFolderError, match="classes"):
        check_fits_dataset(info, ["tumor"], DEFAULT_RECIPE)
    with pytest.raises(RunFolderError, match="channel recipe"):
        check_fits_dataset(info, ["A", "B", "E", "G"], parse_channels("2.5d"))


def test_write_model_json_refuses_an_invalid_manifest(tmp_path):
    with pytest.raises(RunFolderError):
        write_model_json(tmp_path, _manifest(version=0))
    assert not (tmp_path / "model.json").exists()
    write_model_json(tmp_path, _manifest())
    assert json.loads((tmp_path / "model.json").read_text())["family"] == "yolov8"


def test_run_names_are_never_reused(tmp_path):
    assert unique_run_dir(tmp_path, "yolov8", "exp") == tmp_path / "yolov8" / "exp"
    (tmp_path / "yolov8" / "exp").mkdir(parents=True)
    (tmp_path / "yolov8" / "exp-2").mkdir()
    assert unique_run_dir(tmp_path, "yolov8", "exp") == tmp_path / "yolov8" / "exp-3"


def test_latest_run_is_the_last_written_last_pt(tmp_path):
    assert latest_run(tmp_path, "yolov8") is None
    for name in ("old", "new"):
        (tmp_path / "yolov8" / name / "weights").mkdir(parents=True)
        (tmp_path / "yolov8" / name / "weights" / "last.pt").write_bytes(b"w")
    past = time.time() - 100
    os.utime(tmp_path / "yolov8" / "old" / "weights" / "last.pt", (past, past))
    (tmp_path / "yolov8" / "no-weights").mkdir()
    assert latest_run(tmp_path, "yolov8") == tmp_path / "yolov8" / "new"


def test_best_epoch_takes_the_later_of_ties_and_metrics_csv_has_fixed_columns(tmp_path):
    rows = [{"epoch": 1, "mAP50-95": 0.2}, {"epoch": 2, "mAP50-95": 0.4},
            {"epoch": 3, "mAP50-95": 0.4, "mAP50": 0.7}, {"epoch": 4, "mAP50-95": 0.1}]
    assert best_epoch(rows)["epoch"] == 3
    with pytest.raises(RunFolderError):
        best_epoch([])
    write_metrics_csv(tmp_path / "metrics.csv", rows)
    with open(tmp_path / "metrics.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        read = list(reader)
    assert tuple(reader.fieldnames or ()) == METRIC_COLUMNS
    assert [r["epoch"] for r in read] == ["1", "2", "3", "4"]
    assert read[2]["mAP50"] == "0.7" and read[0]["mAP50"] == ""
