"""detect train with YOLO: the run folder (contract 3), offline, resume, no overwrite."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml
from support.runs import check_operating_point
from support.yolo import NetGuard

from detect.dataset import load_dataset
from detect.models.yolo.checkpoint import read_yolo_checkpoint
from detect.models.yolo.run import image_classes, repeat_factors
from detect.runs import METRIC_COLUMNS, read_model_json
from detect.train import TrainConfig, train

MODEL_JSON_KEYS = {
    "format", "version", "status", "family", "size", "backbone", "classes", "class_mode",
    "recipe", "imgsz", "thresholds", "dataset", "metrics", "versions", "weights", "args",
    "created",
}


def test_run_folder_is_complete(tiny_run, tiny_dataset):
    result, _ = tiny_run
    run = result.run_dir
    assert run.parent.name == "yolov8" and run.name == "train"
    for name in ("weights/best.pt", "weights/last.pt", "results.csv", "metrics.csv",
                 "model.json", "data.yaml"):
        assert (run / name).is_file(), name
    data = json.loads((run / "model.json").read_text())
    assert set(data) >= MODEL_JSON_KEYS
    dataset = load_dataset(tiny_dataset)
    assert data["format"] == "detect-model" and data["version"] == 1
    assert data["status"] == "complete"
    assert (data["family"], data["size"], data["backbone"]) == ("yolov8", "n", None)
    assert data["classes"] == ["A", "B", "E", "G"] and data["class_mode"] == "histology"
    assert data["recipe"] == dataset.manifest["recipe"]  # exactly the dataset's windows
    assert data["imgsz"] == 64
    check_operating_point(data, 0.7)
    assert data["dataset"] == {"path": str(tiny_dataset.resolve()),
                               "fingerprint": dataset.fingerprint, "splits": dataset.splits}
    assert set(data["metrics"]) == {"epoch", "mAP50", "mAP50-95", "precision", "recall"}
    assert data["metrics"]["epoch"] == 1
    assert {"detect", "torch", "torchvision", "ultralytics", "python"} <= set(data["versions"])
    assert data["weights"] == {"best": "weights/best.pt", "last": "weights/last.pt"}
    assert data["args"]["ultralytics"]["plots"] is False
    assert data["args"]["ultralytics"]["pretrained"] is False
    assert read_model_json(run).weights_path() == run / "weights" / "best.pt"


def test_yolo_hyperparameters_reach_ultralytics(tiny_run):
    """--nbs 4 --optimizer AdamW --lr0 0.004 --mosaic 0: ultralytics trained with them, as
    its own checkpoint records, not with its defaults (nbs 64, auto, mosaic 1)."""
    result, _ = tiny_run
    recorded = json.loads((result.run_dir / "model.json").read_text())["args"]
    expected = {"nbs": 4, "optimizer": "AdamW", "lr0": 0.004, "mosaic": 0.0}
    for source in (recorded, recorded["ultralytics"]):
        assert {key: source[key] for key in expected} == expected
    used = read_yolo_checkpoint(result.run_dir / "weights" / "last.pt").train_args
    assert {key: used[key] for key in expected} == expected
    assert used["batch"] == 4


def test_metrics_csv_has_one_row_per_epoch(tiny_run):
    result, _ = tiny_run
    with open(result.run_dir / "metrics.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == METRIC_COLUMNS
    assert [row["epoch"] for row in rows] == ["1"]
    for key in ("train_box_loss", "mAP50", "mAP50-95", "precision", "recall", "time_s"):
        float(rows[0][key])  # every column filled with a number


def test_training_touches_no_network(tiny_run):
    _, attempts = tiny_run
    assert attempts == []


def test_run_data_yaml_points_at_the_dataset(tiny_run, tiny_dataset):
    result, _ = tiny_run
    content = yaml.safe_load((result.run_dir / "data.yaml").read_text())
    assert content["path"] == str(tiny_dataset.resolve())
    assert content["names"] == {0: "A", 1: "B", 2: "E", 3: "G"}
    assert content["train"] == "images/train"


class _Interrupt:
    """An epoch callback that presses Ctrl-C after the first epoch."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def __call__(self, epoch: int, epochs: int, row: object) -> None:
        self.seen.append((epoch, epochs))
        if epoch == 1:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_and_names_are_never_reused(
    tiny_run, tiny_dataset, monkeypatch
):
    first, _ = tiny_run
    project = first.run_dir.parent.parent
    config = TrainConfig(model="yolov8", data=tiny_dataset, epochs=2, imgsz=64, batch=4,
                         device="cpu", project=project, workers=0, name="train",
                         class_weighting="sampler")
    stop = _Interrupt()
    with NetGuard(monkeypatch) as guard, pytest.raises(KeyboardInterrupt):
        train(config, on_epoch=stop)
    run = project / "yolov8" / "train-2"  # "train" exists: never overwritten
    assert stop.seen == [(1, 2)]
    assert json.loads((run / "model.json").read_text())["status"] == "training"
    assert (run / "weights" / "last.pt").is_file()
    assert (first.run_dir / "model.json").is_file()  # the first run is untouched
    listing = (run / "train-balanced.txt").read_text().split()
    repeats = repeat_factors(image_classes(load_dataset(tiny_dataset)))
    assert len(listing) == sum(repeats.values()) > len(repeats)  # B (1 of 4 patients) repeated

    resumed = train(TrainConfig(model="yolov8", data=tiny_dataset, project=project,
                                name="train-2", resume=True, device="cpu", workers=0))
    assert guard.attempts == []
    assert resumed.run_dir == run
    assert resumed.epochs_done == 2
    info = read_model_json(run)
    assert info.status == "complete"
    assert info.manifest["args"]["sampling"]["mode"] == "sampler"
    with open(run / "metrics.csv", newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2"]


def test_resume_of_a_finished_run_is_refused(tiny_run, tiny_dataset):
    from detect.errors import ConfigError

    result, _ = tiny_run
    config = TrainConfig(model="yolov8", data=tiny_dataset, project=result.run_dir.parent.parent,
                         name=result.run_dir.name, resume=True, device="cpu", workers=0)
    with pytest.raises(ConfigError, match="finished training"):
        train(config)


def test_resume_with_another_dataset_is_refused(tiny_run, tiny_dataset, tmp_path: Path):
    from detect.errors import ConfigError

    result, _ = tiny_run
    other = tmp_path / "other"
    shutil.copytree(tiny_dataset, other)
    manifest = json.loads((other / "dataset.json").read_text())
    manifest["note"] = "another conversion"
    (other / "dataset.json").write_text(json.dumps(manifest))
    run = tmp_path / "runs" / "yolov8" / "x"
    shutil.copytree(result.run_dir, run)
    data = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**data, "status": "training"}))
    config = TrainConfig(model="yolov8", data=other, project=tmp_path / "runs", name="x",
                         resume=True, device="cpu", workers=0)
    with pytest.raises(ConfigError, match="same --data"):
        train(config)


def test_cli_train_prints_the_run_and_ctrl_c_says_how_to_resume(tiny_dataset, tmp_path,
                                                                monkeypatch):
    from typer.testing import CliRunner

    from detect.cli import app

    args = ["train", "--model", "yolo11", "--data", str(tiny_dataset), "--epochs", "1",
            "--imgsz", "64", "--batch", "4", "--workers", "0", "--device", "cpu",
            "--project", str(tmp_path / "runs"), "--name", "cli"]
    with NetGuard(monkeypatch) as guard:
        done = CliRunner().invoke(app, args)
    assert guard.attempts == []
    assert done.exit_code == 0, done.output
    assert "epoch 1/1: mAP50" in done.output
    assert f"run: {tmp_path / 'runs' / 'yolo11' / 'cli'}" in done.output.replace("\n", "")
    info = read_model_json(tmp_path / "runs" / "yolo11" / "cli")
    assert (info.family, info.status) == ("yolo11", "complete")

    def interrupted(config: object, on_epoch: object = None, on_batch: object = None) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("detect.train.train", interrupted)
    stopped = CliRunner().invoke(app, args)
    assert stopped.exit_code == 130 and "--resume" in stopped.output


def test_fine_tuning_starts_from_local_weights_and_refuses_a_bad_file(tiny_run, tiny_dataset,
                                                                      tmp_path, monkeypatch):
    from detect.errors import ConfigError

    first, _ = tiny_run
    best = first.run_dir / "weights" / "best.pt"
    config = TrainConfig(model="yolov8", data=tiny_dataset, epochs=1, imgsz=64, batch=4,
                         device="cpu", project=tmp_path, workers=0, weights=best)
    with NetGuard(monkeypatch) as guard:
        tuned = train(config)
    assert guard.attempts == []
    args = read_model_json(tuned.run_dir).manifest["args"]
    assert args["weights"] == str(best) and "pretrained" not in args["ultralytics"]
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    bad = TrainConfig(model="yolov8", data=tiny_dataset, epochs=1, imgsz=64, device="cpu",
                      project=tmp_path, workers=0, weights=garbage, name="bad")
    with pytest.raises(ConfigError, match="not a loadable YOLO checkpoint"):
        train(bad)
    assert not (tmp_path / "yolov8" / "bad").exists()  # refused before any file is written
