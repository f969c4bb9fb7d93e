"""Exported TorchScript models behind the :class:`~detect.models.base.Detector` interface.

``model.torchscript`` written by ``detect export --format torchscript`` runs with
``torch.jit.load`` (no ultralytics or torchvision Python code needed to hold the model),
with the pre- and post-processing of the PyTorch path itself:

- YOLO (traced by ultralytics' exporter at ``imgsz``):
  :func:`detect.models.yolo.decode.letterboxed`,
  :func:`~detect.models.yolo.decode.model_input`,
  :func:`~detect.models.yolo.decode.decode_output`.
- Faster R-CNN (``torch.jit.script``): a list of float [3, H, W] images in [0, 1]
  (:func:`detect.models.faster_rcnn.images_to_tensors`); a scripted torchvision detector
  returns ``(losses, detections)``, and the detections go through
  :func:`~detect.models.faster_rcnn.to_detections`.

A TorchScript archive holds code that ``torch.jit.load`` runs: load only files you trust.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detect.device import torch_device
from detect.errors import RunFolderError
from detect.models.base import Detections, Detector
from detect.models.runtime.record import export_record
from detect.models.yolo.decode import YoloDecoding, letterboxed, model_input
from detect.runs import ModelInfo


def load_script(path: Path, device: str) -> Any:
    """``torch.jit.load`` on ``device`` (torch form), in eval mode.

    Raises:
        RunFolderError: not a TorchScript archive.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
            return torch.jit.load(str(path), map_location=device).eval()
    except (RuntimeError, ValueError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RunFolderError(
            f"{path} is not a loadable TorchScript model ({first[:200]}); export it again "
            f"with detect export"
        ) from None


class _Scripted:
    def __init__(self, net: Any, info: ModelInfo, device: str) -> None:
        self.net, self._classes, self._device = net, info.classes, device
        self.imgsz, self.iou = info.imgsz, info.iou

    @property
    def classes(self) -> tuple[str, ...]:
        return self._classes

    @property
    def device(self) -> str:
        return self._device


class TorchScriptYoloDetector(YoloDecoding, _Scripted):
    """A YOLO exported by ``detect export --format torchscript``."""

    def __init__(self, net: Any, info: ModelInfo, stride: int, device: str) -> None:
        super().__init__(net, info, device)
        self.stride = stride

    @torch.inference_mode()
    def head(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, tuple[int, int]]:
        """The traced head output (B, 4 + nc, anchors) and the input's (H, W) px."""
        x = model_input(letterboxed(images, self.imgsz, self.stride), self._device)
        raw = self.net(x)
        return (raw[0] if isinstance(raw, (list, tuple)) else raw), (x.shape[2], x.shape[3])


class TorchScriptFasterRCNNDetector(_Scripted):
    """A Faster R-CNN exported by ``detect export --format torchscript``."""

    @torch.inference_mode()
    def predict(self, images: Sequence[np.ndarray], conf: float) -> list[Detections]:
        """Detections per image (channels in recipe order), score >= conf."""
        from detect.models.faster_rcnn import images_to_tensors, to_detections

        if not images:
            return []
        _, outputs = self.net(images_to_tensors(images, self._device))
        return [to_detections(output, conf) for output in outputs]


def open_torchscript_detector(
    info: ModelInfo, weights: Path, record: Mapping[str, Any], device: str = "auto"
) -> Detector:
    """The detector of ``weights`` as ``record`` (its export section) describes it; no
    check of the record (``detect export`` runs its parity check through this).

    Raises:
        RunFolderError: not a loadable TorchScript model, or another family's.
    """
    target = torch_device(device)
    net = load_script(weights, target)
    if info.family in ("yolov8", "yolo11"):
        return TorchScriptYoloDetector(net, info, int(record.get("stride", 32)), target)
    if info.family == "fasterrcnn":
        return TorchScriptFasterRCNNDetector(net, info, target)
    raise RunFolderError(
        f"{weights}: model family {info.family!r} has no TorchScript runtime in detect"
    )


def load_torchscript_detector(info: ModelInfo, weights: Path, device: str = "auto") -> Detector:
    """The detector of an exported ``.torchscript`` file (its model.json is ``info``).

    Raises:
        RunFolderError: the file is not the one model.json's export section describes
            (:func:`detect.models.runtime.record.export_record`), or not loadable.
    """
    return open_torchscript_detector(info, weights, export_record(info, weights), device)
