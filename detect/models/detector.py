"""The small interface every detector family offers to ``predict`` and ``eval``.

A detector takes a batch of H × W × 3 uint8 images whose channels are in channel-recipe
order (channel 0 = the recipe's first window; this is the RGB order of the converter's
PNGs) and returns, per image, boxes in internal xyxy px of that image, scores and
0-based class indices. Families plug in through :func:`load_detector`; nothing outside
``detect/models`` knows which engine runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from detect.errors import ConfigError, DetectError, RunFolderError
from detect.runs import ModelInfo

_DEVICE = re.compile(r"^(auto|cpu|\d+(,\d+)*)$")


@dataclass(frozen=True)
class Detections:
    """Detections on one image.

    ``xyxy``: float32 (N, 4) px in the input image's frame; ``scores``: float32 (N,) in
    [0, 1]; ``classes``: int64 (N,) 0-based; ``class_scores``: float32 (N, C) per-class
    scores of each box (independent sigmoids for YOLO), or None when the family has none.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    class_scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.xyxy.shape != (n, 4) or self.classes.shape != (n,):
            raise ValueError(
                f"detections must be xyxy (N, 4), scores (N,), classes (N,); got "
                f"{self.xyxy.shape}, {self.scores.shape}, {self.classes.shape}"
            )

    def __len__(self) -> int:
        return len(self.scores)


class Detector(Protocol):
    """What predict.py needs from a model family."""

    @property
    def classes(self) -> tuple[str, ...]: ...

    @property
    def device(self) -> str: ...

    def predict(self, images: Sequence[np.ndarray], conf: float) -> list[Detections]:
        """One :class:`Detections` per image (channels in recipe order), score >= conf."""
        ...


def check_device_spec(spec: str) -> str:
    """Validate ``--device`` syntax (``auto``, ``cpu``, ``0`` or ``0,1``); no torch import.

    Raises:
        ConfigError: anything else.
    """
    text = spec.strip().lower()
    if not _DEVICE.match(text):
        raise ConfigError(
            f"--device must be auto, cpu, a GPU index (0) or a list (0,1), got {spec!r}"
        )
    return text


def resolve_device(spec: str) -> str:
    """``auto`` → ``0`` when CUDA is available, else ``cpu``; GPU indices are checked.

    Returns the spec in ultralytics' form (``cpu``, ``0``, ``0,1``).

    Raises:
        ConfigError: a GPU is asked for and torch sees none, or not that many.
    """
    import torch

    text = check_device_spec(spec)
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if text == "auto":
        return "0" if available else "cpu"
    if text == "cpu":
        return text
    wanted = [int(i) for i in text.split(",")]
    if max(wanted) >= available:
        raise ConfigError(
            f"--device {spec} asks for CUDA GPU {max(wanted)}, but torch sees {available} GPU(s); "
            f"use --device cpu or --device auto"
        )
    return text


def torch_device(spec: str) -> str:
    """The torch device string for inference on one device (first GPU of a list)."""
    resolved = resolve_device(spec)
    return "cpu" if resolved == "cpu" else f"cuda:{resolved.split(',')[0]}"


def load_detector(info: ModelInfo, weights: Path, device: str = "auto") -> Detector:
    """The detector of a run (model.json ``family``), on ``device``; an exported
    ``.onnx`` / ``.torchscript`` file (by suffix) runs through its runtime adapter.

    Raises:
        EnvironmentProblem: torch and torchvision do not work together.
        RunFolderError: the weights are not loadable or do not fit model.json, or the run
            is a histology head (not a detector).
        DetectError: the family has no detector yet.
    """
    from detect.torch_check import require_working_torch

    require_working_torch()  # again here: the model module may be imported already
    if weights.suffix == ".onnx":  # written by detect export, its model.json beside it
        from detect.models.runtime.onnx import load_onnx_detector

        return load_onnx_detector(info, weights, device)
    if weights.suffix == ".torchscript":
        from detect.models.runtime.torchscript import load_torchscript_detector

        return load_torchscript_detector(info, weights, device)
    if info.family in ("yolov8", "yolo11"):
        from detect.models.yolo import YoloDetector

        return YoloDetector.load(
            weights, classes=info.classes, imgsz=info.imgsz, iou=info.iou, device=device
        )
    if info.family == "fasterrcnn":
        from detect.models.faster_rcnn import FasterRCNNDetector

        return FasterRCNNDetector.load(
            weights, classes=info.classes, imgsz=info.imgsz, iou=info.iou,
            backbone=str(info.manifest.get("backbone")), device=device,
        )
    if info.family == "histology":
        raise RunFolderError(
            f"{info.root} is a histology head, not a detector; pass a detector run as --weights "
            f"and this one as --histology"
        )
    raise DetectError(
        f"{info.root}: model family {info.family!r} cannot predict yet (only yolov8, yolo11 "
        f"and fasterrcnn can); use one of those runs"
    )


@contextmanager
def deterministic(enabled: bool, device: Any) -> Iterator[None]:
    """Deterministic torch kernels on the CPU while training (restored afterwards)."""
    import torch

    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled and torch.device(device).type == "cpu")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
