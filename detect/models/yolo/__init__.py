"""YOLOv8 / YOLO11 through ultralytics' public API: training (:mod:`.train`), the
detector (:mod:`.detector`), export (:mod:`.export`).

This package is the only importer of ultralytics. :mod:`detect.models.yolo.env` makes it
offline before its first import (no online checks, no pip installs, no font fetch,
integrations off); :mod:`detect.models.yolo.decode` holds the letterbox and NMS that every
YOLO runtime (PyTorch, ONNX, TorchScript) shares.

Checkpoints are ultralytics' pickled ``.pt`` files (``weights_only=True`` cannot load
them): load only weights you trust.
"""

from detect.models.yolo.detector import YoloDetector, names_of
from detect.models.yolo.env import prepare_ultralytics
from detect.models.yolo.export import export_yolo
from detect.models.yolo.train import (
    YoloTrainSpec,
    architecture_yaml,
    new_model,
    read_results,
    resumable_model,
    resume_yolo,
    train_yolo,
)

__all__ = [
    "YoloDetector",
    "YoloTrainSpec",
    "architecture_yaml",
    "export_yolo",
    "names_of",
    "new_model",
    "prepare_ultralytics",
    "read_results",
    "resumable_model",
    "resume_yolo",
    "train_yolo",
]
