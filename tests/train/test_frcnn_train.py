"""detect train --model fasterrcnn: run folder, resume, determinism, 2 processes, guards,
and the run read back by predict and eval. Tiny: mobilenet, 64 px, 1 step per epoch."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from support.runs import check_operating_point
from support.yolo import NetGuard
from typer.testing import CliRunner

from detect.dataset import load_dataset
from detect.errors import ConfigError, DetectError
from detect.models.faster_rcnn.checkpoint import METRIC_COLUMNS
from detect.models.faster_rcnn.config import FasterRCNNConfig
from detect.runs import read_model_json
from detect.train import TrainResult, train_config

MODEL_JSON_KEYS = {
    "format", "version", "status", "family", "size", "backbone", "classes", "class_mode",
    "recipe", "imgsz", "thresholds", "dataset", "metrics", "versions", "weights", "args",
    "created",
}


def tiny(dataset: Path, project: Path, **changes: Any) -> FasterRCNNConfig:
    options: dict[str, Any] = {
        "data": dataset, "backbone": "mobilenet_v3_large_fpn", "epochs": 2, "imgsz": 64,
        "batch": 2, "device": "cpu", "project": project, "workers": 0, "max_steps": 1,
    }
    return FasterRCNNConfig(**{**options, **changes})


@pytest.fixture(scope="module")
def run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainResult]:
    """Two epochs of one step, offline (any network use would fail)."""
    project = tmp_path_factory.mktemp("frcnn-runs")
    with pytest.MonkeyPatch.context() as mp, NetGuard(mp) as guard:
        result = train_config(tiny(dataset, project, name="a"))
    assert guard.attempts == []
    yield result


def _weights(path: Path) -> dict[str, Any]:
    return dict(torch.load(path, map_location="cpu", weights_only=True))


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == METRIC_COLUMNS
        return list(reader)


def test_run_folder_is_complete(run: TrainResult, dataset: Path):
    folder = run.run_dir
    assert (folder.parent.name, folder.name) == ("fasterrcnn", "a")
    data = json.loads((folder / "model.json").read_text())
    info = load_dataset(dataset)
    assert set(data) >= MODEL_JSON_KEYS and data["status"] == "complete"
    assert (data["format"], data["version"], data["family"]) == ("detect-model", 1, "fasterrcnn")
    assert (data["size"], data["backbone"]) == (None, "mobilenet_v3_large_fpn")
    assert data["classes"] == ["A", "B", "E", "G"] and data["class_mode"] == "histology"
    assert data["recipe"] == info.manifest["recipe"]
    assert data["imgsz"] == 64
    check_operating_point(data, 0.5)
    assert data["dataset"] == {"path": str(dataset.resolve()), "fingerprint": info.fingerprint,
                               "splits": info.splits}
    assert set(data["metrics"]) == {"epoch", "mAP50", "mAP50-95"}
    assert {"detect", "torch", "torchvision", "python"} <= set(data["versions"])
    assert data["weights"] == {"best": "weights/best.pt", "last": "weights/last.pt"}
    assert data["args"]["backbone"] == "mobilenet_v3_large_fpn" and data["args"]["seed"] == 0
    assert read_model_json(folder).family == "fasterrcnn"
    rows = _rows(folder)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for row in rows:
        for key in METRIC_COLUMNS:
            assert row[key] != "", key
    best = max(rows, key=lambda r: (float(r["mAP50"]), int(r["epoch"])))
    assert data["metrics"]["epoch"] == int(best["epoch"]) == run.metrics["epoch"]
    last, best_pt = _weights(folder / "weights/last.pt"), _weights(folder / "weights/best.pt")
    assert last["epoch"] == 2 and last["kind"] == "last" and best_pt["kind"] == "best"
    assert set(last) >= {"model", "optimizer", "scheduler", "scaler", "rng", "history"}
    assert last["optimizer"]["state"]  # momentum buffers are saved for --resume


def test_resume_continues_where_it_stopped(run: TrainResult, dataset: Path, tmp_path: Path):
    config = tiny(dataset, tmp_path, name="b")

    def stop_after_first(epoch: int, epochs: int, row: Any) -> None:
        if epoch == 1:
            raise KeyboardInterrupt  # as Ctrl-C would, after the epoch's files are written

    with pytest.raises(KeyboardInterrupt):
        train_config(config, on_epoch=stop_after_first)
    folder = tmp_path / "fasterrcnn" / "b"
    assert read_model_json(folder).status == "training"
    assert _weights(folder / "weights/last.pt")["epoch"] == 1
    seen: list[int] = []
    resumed = train_config(tiny(dataset, tmp_path, name="b", resume=True),
                               on_epoch=lambda epoch, epochs, row: seen.append(epoch))
    assert seen == [2] and resumed.run_dir == folder and resumed.epochs_done == 2
    assert [r["epoch"] for r in _rows(folder)] == ["1", "2"]
    assert read_model_json(folder).status == "complete"
    mine = _weights(folder / "weights/last.pt")
    uninterrupted = _weights(run.run_dir / "weights/last.pt")
    for name, tensor in uninterrupted["model"].items():
        assert torch.equal(mine["model"][name], tensor), name
    for key, state in uninterrupted["optimizer"]["state"].items():
        assert torch.equal(mine["optimizer"]["state"][key]["momentum_buffer"],
                           state["momentum_buffer"])
    assert mine["scheduler"]["last_epoch"] == uninterrupted["scheduler"]["last_epoch"] == 2
    with pytest.raises(ConfigError, match="finished training"):
        train_config(tiny(dataset, tmp_path, name="b", resume=True))


def test_same_seed_same_weights(dataset: Path, tmp_path: Path):
    models = []
    for name, seed in (("s0", 0), ("s0-again", 0), ("s1", 1)):
        result = train_config(tiny(dataset, tmp_path, name=name, seed=seed, epochs=1))
        models.append(_weights(result.run_dir / "weights/last.pt")["model"])
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])
    assert not all(torch.equal(models[0][k], models[2][k]) for k in models[0])


def test_two_processes_on_gloo_write_one_run(dataset: Path, tmp_path: Path):
    seen: list[tuple[int, float]] = []
    result = train_config(
        tiny(dataset, tmp_path, epochs=1, batch=4, world_size=2, class_weighting="sampler"),
        on_epoch=lambda epoch, epochs, row: seen.append((epoch, row["mAP50"])),
    )
    assert [epoch for epoch, _ in seen] == [1]  # progress reaches the launching process
    assert [p.name for p in (tmp_path / "fasterrcnn").iterdir()] == ["train"]
    data = json.loads((result.run_dir / "model.json").read_text())
    assert data["status"] == "complete" and data["args"]["processes"] == 2
    assert data["args"]["batch_per_process"] == 2 and data["args"]["sampling"]["mode"] == "sampler"
    assert [r["epoch"] for r in _rows(result.run_dir)] == ["1"]
    assert _weights(result.run_dir / "weights/last.pt")["world_size"] == 2
    last = _weights(result.run_dir / "weights/last.pt")
    assert len(last["rng"]) == 2
    val_images = len(load_dataset(dataset).load_coco("val")["images"])
    assert val_images >= 2  # so each process predicted part of it, gathered on rank 0
    assert last["history"][0]["val_images_with_predictions"] == val_images


def test_non_finite_loss_stops_with_epoch_and_iteration(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from torchvision.models.detection import roi_heads

    real = roi_heads.fastrcnn_loss

    def nan_loss(*args: Any) -> tuple[torch.Tensor, torch.Tensor]:
        classifier, box = real(*args)
        return classifier * float("nan"), box

    monkeypatch.setattr(roi_heads, "fastrcnn_loss", nan_loss)
    with pytest.raises(DetectError, match=r"epoch 1, iteration 1/1: non-finite loss") as caught:
        train_config(tiny(dataset, tmp_path, epochs=1))
    assert "loss_classifier=nan" in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "fasterrcnn" / "train" / "weights" / "last.pt").exists()


def test_predict_and_eval_accept_the_run(run: TrainResult, dataset: Path, cohort: Any,
                                         tmp_path: Path):
    from detect.eval import EvalConfig, run_eval
    from detect.predict import PredictConfig, predict, predict_split

    evaluated = run_eval(EvalConfig(data=dataset, weights=run.run_dir / "weights/best.pt",
                                    split="test", bootstrap=0, out=tmp_path / "eval",
                                    device="cpu"), predict_split=predict_split)
    assert evaluated.result.counts["predictions"] > 0  # low threshold: the untrained net scores
    assert evaluated.result.counts["predictions_outside_split"] == 0
    patient = next(p for p in sorted(cohort.dicom_root.iterdir()) if p.is_dir())
    summary = predict(PredictConfig(sources=(patient,), weights=run.run_dir, out=tmp_path / "p",
                                    device="cpu", workers=1, conf=0.0))
    assert summary.slices > 0 and (tmp_path / "p" / "predictions.json").is_file()


def test_cli_errors_are_one_line(dataset: Path, tmp_path: Path):
    from detect.cli import app

    runner = CliRunner()
    bad_backbone = runner.invoke(app, ["train", "--model", "fasterrcnn", "--data", str(dataset),
                                       "--backbone", "vgg16", "--project", str(tmp_path)])
    assert bad_backbone.exit_code == 1, bad_backbone.output
    expected = "--backbone must be one of resnet50_fpn_v2, mobilenet_v3_large_fpn"
    assert expected in bad_backbone.output
    assert len(bad_backbone.output.strip().splitlines()) == 1
    yolo = runner.invoke(app, ["train", "--model", "yolov8", "--data", str(dataset),
                               "--backbone", "resnet50_fpn_v2", "--project", str(tmp_path)])
    assert yolo.exit_code == 1 and "--backbone is for --model fasterrcnn" in yolo.output
    not_data = runner.invoke(app, ["train", "--model", "fasterrcnn", "--data", str(tmp_path),
                                   "--project", str(tmp_path / "runs"), "--device", "cpu"])
    assert not_data.exit_code == 1, not_data.output
    assert "is not a detect dataset" in not_data.output
    assert len(not_data.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()
