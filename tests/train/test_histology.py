"""The histology head: training (run folder, determinism), predict --histology with any
detector, eval --histology, and the one-line errors of bad inputs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from support.yolo import write_ct_series
from typer.testing import CliRunner

from detect.cli import app
from detect.models.base import Detections
from detect.models.histology.config import HistologyConfig
from detect.models.histology.crops import CropSpec
from detect.predict.run import PredictConfig, predict
from detect.predictions import read_predictions
from detect.recipe import DEFAULT_RECIPE, ChannelRecipe, Window
from detect.runs import read_model_json

runner = CliRunner()
LETTERS = ("A", "B", "E", "G")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def head_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of the default head (resnet18) on 32 px crops, through the CLI."""
    project = tmp_path_factory.mktemp("head-runs")
    done = runner.invoke(app, [
        "train", "--model", "histology", "--data", str(dataset), "--epochs", "1",
        "--imgsz", "32", "--batch", "8", "--device", "cpu", "--workers", "0",
        "--project", str(project), "--name", "head"])
    assert done.exit_code == 0, done.output
    assert "val patient balanced accuracy" in done.output
    return project / "histology" / "head"


class TumourFinder:
    """A fake class-agnostic detector: one ``tumor`` box around the pixels brighter than
    60 in channel 1 (none on a slice without them)."""

    classes = ("tumor",)
    device = "cpu"

    def predict(self, images: list[np.ndarray], conf: float) -> list[Detections]:
        out = []
        for image in images:
            ys, xs = np.nonzero(image[:, :, 1] > 60)
            n = 1 if len(xs) else 0
            box = [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]] if n else np.zeros((0, 4))
            out.append(Detections(xyxy=np.asarray(box, np.float32).reshape(-1, 4),
                                  scores=np.full(n, 0.8, np.float32),
                                  classes=np.zeros(n, np.int64)))
        return out


def _tumour_run(tiny_run: Any, target: Path) -> Path:
    result, _ = tiny_run
    shutil.copytree(result.run_dir, target)
    data = json.loads((target / "model.json").read_text())
    data.update(classes=["tumor"], class_mode="tumor")
    (target / "model.json").write_text(json.dumps(data))
    return target


def test_head_run_folder_is_complete(head_run: Path, dataset: Path):
    info = read_model_json(head_run)
    manifest = info.manifest
    dataset_json = json.loads((dataset / "dataset.json").read_text())
    assert (info.family, info.classes, info.imgsz, info.status) == (
        "histology", LETTERS, 32, "complete")
    assert manifest["recipe"] == dataset_json["recipe"]
    assert (manifest["crop"]["margin"], manifest["crop"]["min_margin_px"]) == (0.25, 8.0)
    assert manifest["backbone"] == "resnet18" and manifest["geometry"] is True
    assert manifest["dataset"]["splits"] == dataset_json["splits"]
    assert len(manifest["dataset"]["fingerprint"]) == 64
    assert manifest["args"]["class_weighting"] == "loss"  # auto resolves to loss here
    weights = manifest["args"]["loss_weights"]
    counts = manifest["args"]["training_boxes"]
    assert sum(weights[k] * counts[k] for k in LETTERS) == pytest.approx(sum(counts.values()))
    assert manifest["metrics"]["epoch"] == 1
    assert 0.0 <= manifest["metrics"]["val_patient_balanced_accuracy"] <= 1.0
    assert {"torch", "torchvision", "detect"} <= set(manifest["versions"])
    for name in ("best", "last"):
        data = torch.load(head_run / "weights" / f"{name}.pt", weights_only=True)
        assert (data["format"], data["kind"], data["classes"]) == (
            "detect-histology", name, list(LETTERS))
        assert data["model"]["fc.weight"].shape[0] == 4
    rows = _rows(head_run / "metrics.csv")
    assert len(rows) == 1 and rows[0]["epoch"] == "1"
    assert float(rows[0]["val_patients"]) == len(dataset_json["splits"]["val"])
    assert float(rows[0]["train_loss"]) > 0


def test_same_seed_same_weights(dataset: Path, tmp_path: Path):
    from detect.train import train_config

    def run(name: str, seed: int) -> dict[str, torch.Tensor]:
        config = HistologyConfig(data=dataset, backbone="mobilenet_v3_small", epochs=1,
                                 crop=CropSpec(size=32), batch=4, device="cpu", workers=0,
                                 project=tmp_path, name=name, seed=seed, max_steps=2)
        result = train_config(config)
        return torch.load(result.run_dir / "weights" / "last.pt", weights_only=True)["model"]

    first, second, other = run("a", 0), run("b", 0), run("c", 1)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_a_resumed_run_ends_as_an_uninterrupted_one(dataset: Path, tmp_path: Path):
    from dataclasses import replace

    from detect.train import train_config

    config = HistologyConfig(data=dataset, backbone="mobilenet_v3_small", epochs=2,
                             crop=CropSpec(size=32), batch=4, device="cpu", workers=0,
                             project=tmp_path, name="whole", max_steps=1)
    whole = train_config(config)

    def stop(epoch: int, epochs: int, row: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_config(replace(config, name="cut"), on_epoch=stop)
    assert read_model_json(tmp_path / "histology" / "cut").status == "training"
    resumed = train_config(replace(config, name="cut", resume=True, epochs=1))
    assert resumed.epochs_done == 2  # the run's own epochs (2), not this command's
    a, b = (torch.load(r.run_dir / "weights" / "last.pt", weights_only=True)
            for r in (whole, resumed))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["history"][0]["train_loss"] == b["history"][0]["train_loss"]
    assert len(_rows(resumed.run_dir / "metrics.csv")) == 2


def _check_probabilities(predictions: list) -> None:
    assert predictions
    for p in predictions:
        assert set(p.histology or {}) == set(LETTERS)
        assert abs(sum((p.histology or {}).values()) - 1.0) <= 1e-6


def test_predict_with_a_yolo_run_and_the_head(tiny_run, head_run, tmp_path, monkeypatch):
    from detect.predict.histology import load_head
    from detect.predict.sources import render_job, scan_sources, slice_jobs

    result, _ = tiny_run
    write_ct_series(tmp_path / "in", slices=2, square=(20, 24))
    out = tmp_path / "out"
    predict(PredictConfig(sources=(tmp_path / "in",), weights=result.run_dir, out=out,
                          conf=0.0, device="cpu", workers=1, histology=head_run))
    predictions = read_predictions(out / "predictions.json")
    _check_probabilities(predictions)
    assert {p.label for p in predictions} <= set(LETTERS)
    series = scan_sources([tmp_path / "in"]).series[0]
    jobs = {h.sop_instance_uid: job for h, job in zip(series.slices,
                                                      slice_jobs(series, DEFAULT_RECIPE, False))}
    head, first = load_head(head_run, "cpu"), predictions[0]
    image = render_job(jobs[first.sop_instance_uid]).image
    expected = head.probabilities(image, np.array([first.xyxy]))[0]
    assert [first.histology[k] for k in LETTERS] == pytest.approx(expected, abs=2e-6)
    (patient,) = [r for r in _rows(out / "summary.csv") if r["level"] == "patient"]
    _check_patient_call(patient, predictions)


def test_a_tumour_detector_works_with_the_head(tiny_run, head_run, tmp_path, monkeypatch):
    run = _tumour_run(tiny_run, tmp_path / "tumour-run")
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: TumourFinder())
    write_ct_series(tmp_path / "in" / "a", patient_id="Lung_Dx-A0001", slices=2)
    write_ct_series(tmp_path / "in" / "g", patient_id="Lung_Dx-G0002", slices=2, square=None)
    out = tmp_path / "out"
    done = runner.invoke(app, ["predict", str(tmp_path / "in"), "--weights", str(run),
                               "--histology", str(head_run), "--out", str(out),
                               "--device", "cpu", "--workers", "1"])
    assert done.exit_code == 0, done.output
    predictions = read_predictions(out / "predictions.json")
    assert len(predictions) == 2 and {p.label for p in predictions} == {"tumor"}
    _check_probabilities(predictions)
    rows = {r["patient_id"]: r for r in _rows(out / "summary.csv") if r["level"] == "patient"}
    _check_patient_call(rows["A0001"], [p for p in predictions if p.patient_id.endswith("A0001")])
    assert (rows["G0002"]["histology_head"], rows["G0002"]["histology_head_probability"]) == (
        "none", "")


def _check_patient_call(row: dict[str, str], predictions: list) -> None:
    """summary.csv's head call is the argmax of the mean of the patient's detections'
    head probabilities, and its probability that mean's maximum."""
    assert predictions
    mean = np.mean([[p.histology[k] for k in LETTERS] for p in predictions], axis=0)
    assert row["histology_head"] == LETTERS[int(np.argmax(mean))]
    assert float(row["histology_head_probability"]) == pytest.approx(float(mean.max()), abs=1e-4)


def test_a_head_with_another_recipe_sees_the_slice_in_its_recipe(tiny_run, head_run, tmp_path,
                                                                  monkeypatch):
    from detect.models.histology.network import HistologyHead

    head = tmp_path / "head"
    shutil.copytree(head_run, head)
    recipe = ChannelRecipe("windows", (Window("a", 400, 40), Window("b", 1400, -700),
                                       Window("c", 1800, 400)))
    data = json.loads((head / "model.json").read_text())
    data["recipe"] = recipe.to_dict()
    (head / "model.json").write_text(json.dumps(data))
    seen: list[np.ndarray] = []
    original = HistologyHead.probabilities

    def spy(self: HistologyHead, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        seen.append(image)
        return original(self, image, boxes)

    monkeypatch.setattr(HistologyHead, "probabilities", spy)
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: TumourFinder())
    write_ct_series(tmp_path / "in", slices=1, square=(20, 24))
    predict(PredictConfig(sources=(tmp_path / "in",), weights=_tumour_run(tiny_run, tmp_path / "r"),
                          out=tmp_path / "out", device="cpu", workers=1, histology=head))
    hu = np.array([[-800.0, 40.0]], np.float32)
    expected = np.stack([w.apply(hu) for w in recipe.windows], axis=-1)[0]
    assert len(seen) == 1
    assert seen[0][0, 0].tolist() == expected[0].tolist()
    assert seen[0][24, 20].tolist() == expected[1].tolist()


def test_eval_with_the_head_fills_the_head_section(tiny_run, head_run, dataset, tmp_path):
    result, _ = tiny_run
    out = tmp_path / "eval"
    done = runner.invoke(app, ["eval", "--weights", str(result.run_dir), "--histology",
                               str(head_run), "--data", str(dataset), "--split", "test",
                               "--conf", "0", "--bootstrap", "20", "--device", "cpu",
                               "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "histology (head) patient bal. acc." in done.output
    metrics = json.loads((out / "metrics.json").read_text())
    head = metrics["histology"]["head"]
    test_patients = json.loads((dataset / "dataset.json").read_text())["splits"]["test"]
    assert head["available"] is True
    assert head["patient"]["covered"]["scored"] == len(test_patients)
    assert head["patient"]["balanced_accuracy"] is not None
    assert "patient_balanced_accuracy_head" in metrics["ci"]["metrics"]
    records = read_predictions(out / "predictions.json")
    _check_probabilities(records)


def _fails(args: list[str], *expected: str) -> None:
    done = runner.invoke(app, args)
    assert done.exit_code == 1, done.output
    lines = done.output.strip().splitlines()
    assert len(lines) == 1, done.output
    for text in expected:
        assert text in lines[0], lines[0]


def test_bad_inputs_are_one_line(tiny_run, head_run, dataset, tmp_path):
    result, _ = tiny_run
    write_ct_series(tmp_path / "in", slices=1)
    _fails(["predict", str(tmp_path / "in"), "--weights", str(result.run_dir), "--histology",
            str(result.run_dir), "--out", str(tmp_path / "o1")], "yolov8 run",
           "not a histology head")
    _fails(["predict", str(tmp_path / "in"), "--weights", str(head_run), "--out",
            str(tmp_path / "o2")], "is a histology head, not a detector")
    _fails(["eval", "--predictions", str(tmp_path / "p.json"), "--histology", str(head_run),
            "--data", str(dataset)], "--histology needs --weights")
    other = tmp_path / "other-recipe"
    shutil.copytree(head_run, other)
    data = json.loads((other / "model.json").read_text())
    data["recipe"]["windows"][0]["width_hu"] = 1500.0
    (other / "model.json").write_text(json.dumps(data))
    _fails(["eval", "--weights", str(result.run_dir), "--histology", str(other), "--data",
            str(dataset), "--device", "cpu", "--out", str(tmp_path / "e")],
           "histology head's channel recipe", "not the dataset's")
    empty = tmp_path / "no-boxes"
    shutil.copytree(dataset, empty)
    coco = json.loads((empty / "coco" / "train.json").read_text())
    coco["annotations"] = []
    (empty / "coco" / "train.json").write_text(json.dumps(coco))
    _fails(["train", "--model", "histology", "--data", str(empty), "--epochs", "1",
            "--device", "cpu", "--project", str(tmp_path / "runs")],
           "no tumour boxes", "train split")
    assert not (tmp_path / "runs").exists()  # nothing written before the data was checked
    _fails(["train", "--model", "histology", "--data", str(dataset), "--backbone",
            "resnet50_fpn_v2", "--project", str(tmp_path / "runs")], "--backbone")
