"""Faster R-CNN (torchvision), trained by detect's own engine (:mod:`detect.models.faster_rcnn`):
anchors, ROI sampling and the FPN sized for tumours on CT slices."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from detect.errors import RunFolderError
from detect.models.family import Family
from detect.models.faster_rcnn.config import BACKBONES, DETECTIONS_PER_IMAGE, FasterRCNNConfig

if TYPE_CHECKING:
    from detect.models.base import Detector
    from detect.models.training import (
        BatchProgress,
        EpochProgress,
        RunOptions,
        TrainResult,
        TrainServices,
    )
    from detect.runs import ModelInfo


class FasterRCNNFamily(Family):
    """torchvision's Faster R-CNN (module docstring)."""

    name = "fasterrcnn"
    summary = "Faster R-CNN (torchvision), --backbone resnet50_fpn_v2 or mobilenet_v3_large_fpn"
    rank = 20
    config_type = FasterRCNNConfig
    options = ("imgsz", "class_weighting", "amp", "backbone")
    thresholds: ClassVar[Mapping[str, float]] = MappingProxyType({"conf": 0.25, "iou": 0.5})
    export_formats = ("onnx", "torchscript")
    max_detections = DETECTIONS_PER_IMAGE

    def check_manifest(self, data: Mapping[str, Any], where: Path) -> None:
        if data.get("backbone") not in BACKBONES:
            raise RunFolderError(f"{where}: backbone must be one of {', '.join(BACKBONES)} for "
                                 f"{self.name}, found {data.get('backbone')!r}")

    def train(self, config: RunOptions, services: TrainServices,
              on_epoch: EpochProgress | None,
              on_batch: BatchProgress | None = None) -> TrainResult:
        from detect.models.faster_rcnn.launch import train_fasterrcnn

        if not isinstance(config, FasterRCNNConfig):
            raise TypeError(f"expected a FasterRCNNConfig, got {type(config).__name__}")
        return train_fasterrcnn(config, services, on_epoch, self.thresholds, on_batch)

    def load_detector(self, info: ModelInfo, weights: Path, device: str) -> Detector:
        from detect.models.faster_rcnn.network import FasterRCNNDetector

        return FasterRCNNDetector.load(weights, classes=info.classes, imgsz=info.imgsz,
                                       iou=info.iou, backbone=str(info.manifest.get("backbone")),
                                       device=device)

    def open_exported(self, fmt: str, info: ModelInfo, path: Path, record: Mapping[str, Any],
                      device: str) -> Detector:
        from detect.models.faster_rcnn.runtime import open_exported_faster_rcnn

        return open_exported_faster_rcnn(fmt, info, path, device)

    def export(self, fmt: str, info: ModelInfo, weights: Path, work_dir: Path,
               opset: int) -> Path:
        from detect.models.faster_rcnn.export import export_faster_rcnn

        return export_faster_rcnn(fmt, info, weights, work_dir, opset)

    def export_input(self, fmt: str, imgsz: int) -> dict[str, Any]:
        return {
            "name": "image", "dtype": "float32", "range": [0.0, 1.0], "size_px": imgsz,
            "shape": [3, "height", "width"],
            "preprocess": f"none outside the graph: it resizes the longer side to {imgsz} px "
            f"and normalises (ImageNet mean/std); one image per run",
            "output": "boxes [N, 4] xyxy px of the input image, labels [N] 1-based, scores [N]"
            if fmt == "onnx" else "(losses, [{boxes, labels, scores}]) as torchvision scripted",
        }


FAMILIES = (FasterRCNNFamily(),)
