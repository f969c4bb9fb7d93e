"""YOLOv8 / YOLO11 through ultralytics' public API: training (:mod:`.train`), the
detector (:mod:`.detector`), export (:mod:`.export`).

This package is the only importer of ultralytics. :mod:`detect.models.yolo.env` makes it
offline before its first import (no online checks, no pip installs, no font fetch,
integrations off); :mod:`detect.models.yolo.decode` holds the letterbox and NMS that every
YOLO runtime (PyTorch, ONNX, TorchScript) shares.

Checkpoints are ultralytics' pickled ``.pt`` files. Every one detect opens is read by
:mod:`detect.models.yolo.checkpoint` (``weights_only=True``, an explicit allowlist of the
classes a YOLO detection model holds, inert stand-ins for them, tensors and names out) and
the network is built from ultralytics' bundled YAML (:mod:`detect.models.yolo.network`):
a crafted ``.pt`` is refused by name and never runs.
"""

from detect.models.yolo.checkpoint import YoloCheckpoint, read_yolo_checkpoint
from detect.models.yolo.detector import YoloDetector, names_of
from detect.models.yolo.env import prepare_ultralytics
from detect.models.yolo.export import export_yolo
from detect.models.yolo.network import architecture_yaml
from detect.models.yolo.train import (
    YoloTrainSpec,
    check_resumable,
    new_model,
    read_results,
    resumable_model,
    resume_yolo,
    train_yolo,
)

__all__ = [
    "YoloCheckpoint",
    "YoloDetector",
    "YoloTrainSpec",
    "architecture_yaml",
    "check_resumable",
    "export_yolo",
    "names_of",
    "new_model",
    "prepare_ultralytics",
    "read_results",
    "read_yolo_checkpoint",
    "resumable_model",
    "resume_yolo",
    "train_yolo",
]
