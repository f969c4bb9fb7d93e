"""Exported ONNX models behind the :class:`~detect.models.base.Detector` interface.

``detect predict --weights model.onnx`` (with the model.json that ``detect export`` wrote
beside it) runs here, through ONNX Runtime, with the pre- and post-processing of the
PyTorch path itself, not a copy of it:

- YOLO: :func:`detect.models.yolo.decode.letterboxed` +
  :func:`~detect.models.yolo.decode.model_input` (ultralytics' letterbox to ``imgsz``, pad
  114, /255), the graph (dynamic batch and size), then
  :func:`~detect.models.yolo.decode.decode_output` (ultralytics' NMS with the class scores
  carried through, boxes scaled back to the image).
- Faster R-CNN: the graph holds torchvision's own transform (resize to ``imgsz``, ImageNet
  normalisation), RPN, box head and NMS; it takes one float [3, H, W] image in [0, 1]
  (:func:`detect.models.faster_rcnn.images_to_tensors`) and returns boxes in that image's
  px, 1-based labels and scores (:func:`~detect.models.faster_rcnn.to_detections`).

ONNX Runtime uses the CUDA execution provider when the device is a GPU and the installed
onnxruntime has it, else the CPU.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detect.device import torch_device
from detect.errors import EnvironmentProblem, RunFolderError
from detect.models.base import Detections, Detector
from detect.models.runtime.record import export_record
from detect.models.yolo.decode import YoloDecoding, letterboxed, model_input
from detect.runs import ModelInfo

log = logging.getLogger(__name__)


def _session(path: Path, device: str) -> tuple[Any, str]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise EnvironmentProblem(
            "onnxruntime is not installed, so .onnx models cannot run; pip install onnxruntime"
        ) from None
    target = torch_device(device)
    providers: list[Any] = ["CPUExecutionProvider"]
    if target.startswith("cuda"):
        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(target[5:])}))
        else:
            log.warning("this onnxruntime has no CUDA provider; %s runs on the CPU", path.name)
            target = "cpu"
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), options, providers=providers), target
    except Exception as exc:  # onnxruntime raises its own pybind error types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RunFolderError(
            f"{path} is not a loadable ONNX model ({first[:200]}); export it again with "
            f"detect export"
        ) from None


def _check_names(session: Any, path: Path, classes: Sequence[str]) -> None:
    text = session.get_modelmeta().custom_metadata_map.get("names")  # ultralytics' metadata
    try:
        mapping = ast.literal_eval(text) if text else None
        names = [str(mapping[i]) for i in sorted(mapping)] if isinstance(mapping, dict) else None
    except (ValueError, SyntaxError, TypeError):
        names = None
    if names is not None and tuple(names) != tuple(classes):
        raise RunFolderError(
            f"{path} predicts classes {names}, but its model.json says {list(classes)}; "
            f"keep the model.json that detect export wrote beside it"
        )


class OnnxYoloDetector(YoloDecoding):
    """A YOLO exported by ``detect export --format onnx``, on ONNX Runtime."""

    def __init__(self, session: Any, info: ModelInfo, stride: int, device: str) -> None:
        self.session, self._classes, self._device = session, info.classes, device
        self.imgsz, self.iou, self.stride = info.imgsz, info.iou, stride
        self.input_name = session.get_inputs()[0].name

    @property
    def device(self) -> str:
        return self._device

    def head(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, tuple[int, int]]:
        """The graph's output (B, 4 + nc, anchors) and the letterboxed input's (H, W) px."""
        x = model_input(letterboxed(images, self.imgsz, self.stride), "cpu")
        raw = self.session.run(None, {self.input_name: x.numpy()})[0]
        return torch.from_numpy(np.asarray(raw)), (x.shape[2], x.shape[3])


class OnnxFasterRCNNDetector:
    """A Faster R-CNN exported by ``detect export --format onnx``: one image per run."""

    def __init__(self, session: Any, info: ModelInfo, device: str) -> None:
        self.session, self._classes, self._device = session, info.classes, device
        self.input_name = session.get_inputs()[0].name

    @property
    def classes(self) -> tuple[str, ...]:
        return self._classes

    @property
    def device(self) -> str:
        return self._device

    def predict(self, images: Sequence[np.ndarray], conf: float) -> list[Detections]:
        """Detections per image (channels in recipe order), score >= conf."""
        from detect.models.faster_rcnn import images_to_tensors, to_detections

        out = []
        for tensor in images_to_tensors(images, "cpu"):
            boxes, labels, scores = self.session.run(None, {self.input_name: tensor.numpy()})
            output = {"boxes": torch.from_numpy(np.asarray(boxes)),
                      "labels": torch.from_numpy(np.asarray(labels)),
                      "scores": torch.from_numpy(np.asarray(scores))}
            out.append(to_detections(output, conf))
        return out


def open_onnx_detector(
    info: ModelInfo, weights: Path, record: Mapping[str, Any], device: str = "auto"
) -> Detector:
    """The detector of ``weights`` as ``record`` (its export section) describes it; no
    check of the record (``detect export`` runs its parity check through this).

    Raises:
        RunFolderError: not a loadable ONNX model, or another family's.
        EnvironmentProblem: onnxruntime is not installed.
    """
    session, target = _session(weights, device)
    if info.family in ("yolov8", "yolo11"):
        _check_names(session, weights, info.classes)
        return OnnxYoloDetector(session, info, int(record.get("stride", 32)), target)
    if info.family == "fasterrcnn":
        return OnnxFasterRCNNDetector(session, info, target)
    raise RunFolderError(f"{weights}: model family {info.family!r} has no ONNX runtime in detect")


def load_onnx_detector(info: ModelInfo, weights: Path, device: str = "auto") -> Detector:
    """The detector of an exported ``.onnx`` file (its model.json is ``info``).

    Raises:
        RunFolderError: the file is not the one model.json's export section describes
            (:func:`detect.models.runtime.record.export_record`), or not loadable.
        EnvironmentProblem: onnxruntime is not installed.
    """
    return open_onnx_detector(info, weights, export_record(info, weights), device)
