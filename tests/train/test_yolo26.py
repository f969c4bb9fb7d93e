"""YOLO26, the family added as one module (models/families/yolo26.py): trained, predicted
from DICOM with its SR, exported to ONNX with parity and run from the export, end to end
at 64 px on the CPU. Its head is NMS-free: one row per box, top-k by score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.runs import check_operating_point
from support.yolo import NetGuard

from detect.export.run import ExportConfig, export_model
from detect.predict.run import PredictConfig, predict
from detect.predictions import read_predictions
from detect.train import TrainConfig, train


@pytest.fixture(scope="module")
def yolo26_run(yolo_env: Path, tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    config = TrainConfig(model="yolo26", data=tiny_dataset, epochs=1, imgsz=64, batch=4,
                         device="cpu", project=tmp_path_factory.mktemp("runs"), workers=0)
    with pytest.MonkeyPatch.context() as mp, NetGuard(mp) as guard:
        result = train(config)
    assert guard.attempts == []
    return result


def test_yolo26_trains_with_its_nms_free_head(yolo26_run):
    manifest = json.loads(yolo26_run.model_json.read_text())
    assert manifest["family"] == "yolo26" and manifest["status"] == "complete"
    check_operating_point(manifest, 0.7)
    assert manifest["args"]["ultralytics"]["nms"] is False  # validated with the one-to-one head
    assert yolo26_run.run_dir.parent.name == "yolo26"


def test_yolo26_predicts_exports_with_parity_and_runs_from_the_export(
        yolo26_run, tiny_cohort, tmp_path, monkeypatch):
    with NetGuard(monkeypatch) as guard:
        torch_run = predict(PredictConfig(sources=(tiny_cohort.dicom_root,),
                                          weights=yolo26_run.run_dir, out=tmp_path / "torch",
                                          conf=0.001, save=("json", "sr"), device="cpu"))
        exported = export_model(ExportConfig(yolo26_run.run_dir, "onnx", tmp_path / "onnx"))
        onnx_run = predict(PredictConfig(sources=(tiny_cohort.dicom_root,),
                                         weights=exported.file, out=tmp_path / "from-onnx",
                                         conf=0.001, device="cpu"))
    assert guard.attempts == []
    assert exported.parity.passed and exported.parity.matched == exported.parity.reference > 0
    assert exported.parity.head_values == 0  # an NMS-free head is compared as detections
    mine = read_predictions(torch_run.files["predictions"])
    theirs = read_predictions(onnx_run.files["predictions"])
    assert mine and len(mine) == len(theirs)
    by_slice: dict[tuple[str, str], list] = {}
    for p in theirs:  # the NMS-free top-k may hold one box once per class
        by_slice.setdefault((p.sop_instance_uid, p.label), []).append(p)
    for p in mine:  # paired by slice, class and box, not by position
        twin = min(by_slice[(p.sop_instance_uid, p.label)],
                   key=lambda q: (max(abs(a - b) for a, b in zip(p.xyxy, q.xyxy)),
                                  abs(p.score - q.score)))
        assert max(abs(a - b) for a, b in zip(p.xyxy, twin.xyxy)) <= 1.0
        assert abs(p.score - twin.score) <= 1e-3
    per_slice = {}
    for p in mine:
        per_slice[p.sop_instance_uid] = per_slice.get(p.sop_instance_uid, 0) + 1
    assert max(per_slice.values()) <= 300  # the head's top-k, no NMS after it
    assert sorted(torch_run.files["sr"].rglob("*.dcm"))
