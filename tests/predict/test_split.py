"""predict_split (for detect eval --weights) and parity with ultralytics' own predict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from detect.dataset import load_dataset
from detect.errors import RunFolderError
from detect.models.detector import load_detector
from detect.predict.split import predict_split
from detect.predictions import read_predictions
from detect.runs import resolve_weights


def test_predict_split_ties_records_to_the_coco_images(tiny_run, tiny_dataset):
    result, _ = tiny_run
    dataset = load_dataset(tiny_dataset)
    predictions = predict_split(result.run_dir, dataset, "val", device="cpu", conf=0.0)
    images = {im["id"]: im for im in dataset.load_coco("val")["images"]}
    assert predictions and {p.image_id for p in predictions} == set(images)
    for p in predictions:
        image = images[p.image_id]
        assert p.sop_instance_uid == image["sop_instance_uid"]
        assert p.series_instance_uid == image["series_instance_uid"]
        assert p.patient_id == image["patient_id"]
        assert p.label == dataset.classes[p.category_id - 1]


def test_predict_split_refuses_a_dataset_prepared_otherwise(tiny_run, tiny_dataset, tmp_path):
    result, _ = tiny_run
    other = tmp_path / "other"
    shutil.copytree(tiny_dataset, other)
    manifest = json.loads((other / "dataset.json").read_text())
    manifest["recipe"]["windows"][0]["width_hu"] = 1500.0
    (other / "dataset.json").write_text(json.dumps(manifest))
    with pytest.raises(RunFolderError, match="channel recipe"):
        predict_split(result.run_dir, load_dataset(other), "val", device="cpu")
    manifest["classes"] = ["tumor"]
    (other / "dataset.json").write_text(json.dumps(manifest))
    with pytest.raises(RunFolderError, match="classes"):
        predict_split(result.run_dir, load_dataset(other), "val", device="cpu")


def test_detector_sees_what_ultralytics_predict_sees_on_the_png_files(tiny_run, tiny_dataset):
    """Channel order and preprocessing: the tensor our adapter feeds the network for the
    PNG as the converter wrote it (read, BGR → recipe order) is the one ultralytics feeds
    it reading the file itself, and the detections agree."""
    from ultralytics import YOLO

    from detect.predict.split import _read_png

    result, _ = tiny_run
    info, weights = resolve_weights(result.run_dir)
    detector = load_detector(info, weights, "cpu")
    dataset = load_dataset(tiny_dataset)
    names = [im["file_name"] for im in dataset.load_coco("test")["images"][:2]]
    seen: dict[str, list[torch.Tensor]] = {"ours": [], "theirs": []}
    detector.net.register_forward_pre_hook(lambda m, a: seen["ours"].append(a[0].clone()))
    yolo = YOLO(str(weights))
    yolo.model.register_forward_pre_hook(lambda m, a: seen["theirs"].append(a[0].clone()))
    ours = detector.predict([_read_png(dataset, name) for name in names], conf=0.0)
    theirs = yolo.predict([str(tiny_dataset / n) for n in names], conf=0.0, imgsz=64,
                          device="cpu", verbose=False)
    assert torch.equal(seen["ours"][0], seen["theirs"][0])
    assert not torch.equal(seen["ours"][0], seen["theirs"][0].flip(1))  # order matters here
    for mine, their in zip(ours, theirs):
        boxes, scores = their.boxes.xyxy.numpy(), their.boxes.conf.numpy()
        assert len(mine) > 0 and abs(len(mine) - len(boxes)) <= 1
        unmatched = 0
        for box, score in zip(mine.xyxy, mine.scores):  # paired by box and score
            close = (np.abs(boxes - box).max(axis=1) <= 1e-3) & (np.abs(scores - score) <= 1e-5)
            unmatched += not close.any()
        # this 1-epoch model scores every box about 2e-4: which of two boxes with equal
        # scores NMS keeps is the sort's choice (detect's is stable, torchvision's is not)
        assert unmatched <= max(1, len(mine) // 10), unmatched
        assert mine.class_scores is not None
        np.testing.assert_allclose(mine.class_scores.max(axis=1), mine.scores, rtol=1e-6)


def test_weights_file_inside_a_run_is_found_from_weights_folder(tiny_run, tmp_path: Path):
    result, _ = tiny_run
    info, weights = resolve_weights(result.run_dir / "weights" / "last.pt")
    assert weights.name == "last.pt" and info.root == result.run_dir


def test_detect_eval_weights_scores_a_run_through_predict_split(tiny_run, tiny_dataset, tmp_path):
    from typer.testing import CliRunner

    from detect.cli import app

    result, _ = tiny_run
    out = tmp_path / "eval"
    done = CliRunner().invoke(app, ["eval", "--weights", str(result.run_dir), "--data",
                                    str(tiny_dataset), "--split", "val", "--bootstrap", "0",
                                    "--device", "cpu", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "mAP50" in done.output
    assert len(read_predictions(out / "predictions.json")) > 0
