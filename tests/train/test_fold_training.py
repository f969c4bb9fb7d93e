"""A leave-one-out fold (``detect convert --folds``) trains and scores with every detector
family: its val split, made of training images when no patient can be spared, is enough
for YOLO and Faster R-CNN, and eval on its test patient passes the leakage guard.
Tiny: 64 px, one epoch (Faster R-CNN: one step)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.yolo import NetGuard

from detect.convert import convert
from detect.convert.config import ConvertConfig
from detect.dataset import load_dataset
from detect.eval import EvalConfig, run_eval
from detect.models.faster_rcnn.config import FasterRCNNConfig
from detect.predict.split import predict_split
from detect.runs.provenance import file_sha256
from detect.shipped import PHANTOM_WEIGHTS_PARTS, source_tree
from detect.train import TrainConfig, train, train_config


@pytest.fixture(scope="module")
def fold(tiny_cohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("loo") / "loo"
    convert(ConvertConfig(tiny_cohort.dicom_root, tiny_cohort.annotation_root, out,
                          workers=1, class_mode="tumor", folds=2))
    info = load_dataset(out / "fold-1")
    assert info.manifest["val_from_train"] is not None  # no patient spared for val
    return info.root


def _score(run_dir: Path, fold: Path, tmp_path: Path) -> None:
    result = run_eval(EvalConfig(data=fold, weights=run_dir, device="cpu", bootstrap=0,
                                 out=tmp_path / "eval"), predict_split=predict_split).result
    assert result.counts["images"] == len(load_dataset(fold).load_coco("test")["images"]) > 0


def test_yolo_trains_and_scores_on_a_fold(fold, yolo_env, tmp_path):
    config = TrainConfig(model="yolov8", data=fold, epochs=1, imgsz=64, batch=4, nbs=4,
                         device="cpu", project=tmp_path / "runs", workers=0)
    with pytest.MonkeyPatch.context() as mp, NetGuard(mp):
        result = train(config)
    assert (result.run_dir / "weights" / "best.pt").is_file()
    _score(result.run_dir, fold, tmp_path)


def test_fasterrcnn_trains_and_scores_on_a_fold(fold, tmp_path):
    config = FasterRCNNConfig(data=fold, backbone="mobilenet_v3_large_fpn", epochs=1,
                              imgsz=64, batch=2, device="cpu", project=tmp_path / "runs",
                              workers=0, max_steps=1)
    with pytest.MonkeyPatch.context() as mp, NetGuard(mp):
        result = train_config(config)
    assert (result.run_dir / "weights" / "best.pt").is_file()
    _score(result.run_dir, fold, tmp_path)


def test_yolo_fine_tunes_the_shipped_phantom_checkpoint_on_one_class(fold, yolo_env, tmp_path,
                                                                     caplog):
    """``--weights phantom``: a 4-class phantom yolov8n starts a 1-class tumour model
    (ultralytics loads the tensors whose shapes fit: all but the class head)."""
    config = TrainConfig(model="yolov8", data=fold, epochs=1, imgsz=64, batch=4, nbs=4,
                         device="cpu", project=tmp_path / "runs", workers=0,
                         weights=Path("phantom"))
    with caplog.at_level("INFO", logger="detect.models.yolo.train"), \
            pytest.MonkeyPatch.context() as mp, NetGuard(mp):
        result = train(config)
    (loaded,) = [r.getMessage() for r in caplog.records if "tensors fit" in r.getMessage()]
    assert loaded.startswith("--weights: 355 of 355 tensors fit yolov8n")
    assert (result.run_dir / "weights" / "best.pt").is_file()
    manifest = json.loads((result.run_dir / "model.json").read_text())
    shipped = source_tree().joinpath(*PHANTOM_WEIGHTS_PARTS, "weights", "best.pt")
    assert manifest["args"]["weights"] == str(shipped)
    assert manifest["provenance"]["initial_weights"] == {"path": str(shipped.resolve()),
                                                         "sha256": file_sha256(shipped)}
