"""YOLOv8 and YOLO11: ultralytics' detectors, trained and run through its public API
(:mod:`detect.models.yolo`), with NMS after the network."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from detect.errors import RunFolderError
from detect.models.family import Family
from detect.models.yolo.config import SIZES, YoloConfig, YoloVariant

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

#: Most boxes per image after NMS, as ultralytics' predictor keeps.
MAX_DETECTIONS = 300


class YoloFamily(Family):
    """A YOLO of ultralytics' (module docstring); :attr:`variant` says which."""

    config_type = YoloConfig
    options = ("imgsz", "size", "class_weighting", "amp", "nbs", "optimizer", "lr0", "mosaic")
    thresholds: ClassVar[Mapping[str, float]] = MappingProxyType({"conf": 0.25, "iou": 0.7})
    export_formats = ("onnx", "torchscript")
    max_detections = MAX_DETECTIONS

    def __init__(self, variant: YoloVariant, summary: str, rank: int) -> None:
        self.variant, self.name, self.summary, self.rank = variant, variant.name, summary, rank
        self.compares_raw_head = not variant.end2end

    def config_values(self, given: Mapping[str, Any]) -> dict[str, Any]:
        return {**given, "family": self.name}

    def check_manifest(self, data: Mapping[str, Any], where: Path) -> None:
        if data.get("size") not in SIZES:
            raise RunFolderError(f"{where}: size must be one of {', '.join(SIZES)} for "
                                 f"{self.name}, found {data.get('size')!r}")

    def train(self, config: RunOptions, services: TrainServices,
              on_epoch: EpochProgress | None,
              on_batch: BatchProgress | None = None) -> TrainResult:
        from detect.models.yolo.run import train_yolo

        if not isinstance(config, YoloConfig):
            raise TypeError(f"expected a YoloConfig, got {type(config).__name__}")
        return train_yolo(self.variant, config, self.thresholds, on_epoch)

    def load_detector(self, info: ModelInfo, weights: Path, device: str) -> Detector:
        from detect.models.yolo.detector import YoloDetector

        return YoloDetector.load(weights, variant=self.variant, size=str(info.manifest["size"]),
                                 classes=info.classes, imgsz=info.imgsz, iou=info.iou,
                                 device=device)

    def open_exported(self, fmt: str, info: ModelInfo, path: Path, record: Mapping[str, Any],
                      device: str) -> Detector:
        from detect.models.yolo.runtime import open_exported_yolo

        return open_exported_yolo(fmt, self.variant, info, path, record, device)

    def export(self, fmt: str, info: ModelInfo, weights: Path, work_dir: Path,
               opset: int) -> Path:
        from detect.models.yolo.export import export_yolo

        return export_yolo(weights, fmt, variant=self.variant, size=str(info.manifest["size"]),
                           classes=info.classes, imgsz=info.imgsz, work_dir=work_dir,
                           opset=opset)

    def export_packages(self, fmt: str) -> tuple[str, ...]:
        return ("onnx", "onnxruntime", "onnxslim") if fmt == "onnx" else ()

    def export_input(self, fmt: str, imgsz: int) -> dict[str, Any]:
        if self.variant.end2end:
            output = ("(batch, k, 6), k <= 300: x1, y1, x2, y2 in input px, score, class; "
                      "NMS-free (one-to-one head), no NMS after the graph")
        else:
            output = ("(batch, 4 + classes, anchors): box cx, cy, w, h in input px, then "
                      "class sigmoids; NMS runs outside the graph")
        return {
            "name": "images", "dtype": "float32", "range": [0.0, 1.0], "size_px": imgsz,
            "shape": ["batch", 3, "height", "width"] if fmt == "onnx"
            else ["batch", 3, imgsz, imgsz],
            "preprocess": f"ultralytics letterbox to {imgsz} x {imgsz} px (aspect kept, "
            f"centred, pad 114), channels in recipe order, /255",
            "output": output,
        }

    def export_stride(self, reference: Detector) -> int | None:
        return int(getattr(reference, "stride", 32))


FAMILIES = (
    YoloFamily(YoloVariant("yolov8"), "YOLOv8 (ultralytics), sizes n-x", rank=10),
    YoloFamily(YoloVariant("yolo11"), "YOLO11 (ultralytics), sizes n-x", rank=11),
)
