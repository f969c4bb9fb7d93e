"""Load the detector of a run folder or an exported file: one lookup on model.json's
family (or the file's suffix); nothing outside ``detect/models`` knows which engine runs.
The interface itself is :class:`detect.models.base.Detector`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from detect.errors import DetectError, RunFolderError
from detect.models.base import Detector
from detect.runs import ModelInfo
from detect.torch_check import require_working_torch


def _yolo(info: ModelInfo, weights: Path, device: str) -> Detector:
    from detect.models.yolo import YoloDetector

    return YoloDetector.load(
        weights, family=info.family, size=str(info.manifest["size"]), classes=info.classes,
        imgsz=info.imgsz, iou=info.iou, device=device,
    )


def _faster_rcnn(info: ModelInfo, weights: Path, device: str) -> Detector:
    from detect.models.faster_rcnn import FasterRCNNDetector

    return FasterRCNNDetector.load(
        weights, classes=info.classes, imgsz=info.imgsz, iou=info.iou,
        backbone=str(info.manifest.get("backbone")), device=device,
    )


def _onnx(info: ModelInfo, weights: Path, device: str) -> Detector:
    from detect.models.runtime.onnx import load_onnx_detector

    return load_onnx_detector(info, weights, device)


def _torchscript(info: ModelInfo, weights: Path, device: str) -> Detector:
    from detect.models.runtime.torchscript import load_torchscript_detector

    return load_torchscript_detector(info, weights, device)


Loader = Callable[[ModelInfo, Path, str], Detector]
#: Exported files (written by detect export, their model.json beside them), by suffix.
BY_SUFFIX: dict[str, Loader] = {".onnx": _onnx, ".torchscript": _torchscript}
#: PyTorch checkpoints of a run folder, by model.json family.
BY_FAMILY: dict[str, Loader] = {"yolov8": _yolo, "yolo11": _yolo, "fasterrcnn": _faster_rcnn}


def load_detector(info: ModelInfo, weights: Path, device: str = "auto") -> Detector:
    """The detector of a run (model.json ``family``), on ``device``; an exported
    ``.onnx`` / ``.torchscript`` file (by suffix) runs through its runtime adapter.

    Raises:
        EnvironmentProblem: torch and torchvision do not work together.
        RunFolderError: the weights are not loadable or do not fit model.json, or the run
            is a histology head (not a detector).
        DetectError: the family has no detector yet.
    """
    require_working_torch()  # again here: the model module may be imported already
    loader = BY_SUFFIX.get(weights.suffix) or BY_FAMILY.get(info.family)
    if loader is not None:
        return loader(info, weights, device)
    if info.family == "histology":
        raise RunFolderError(
            f"{info.root} is a histology head, not a detector; pass a detector run as --weights "
            f"and this one as --histology"
        )
    raise DetectError(
        f"{info.root}: model family {info.family!r} cannot predict yet (only "
        f"{', '.join(sorted(BY_FAMILY))} can); use one of those runs"
    )
