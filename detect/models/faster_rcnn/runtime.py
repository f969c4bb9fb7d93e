"""A Faster R-CNN exported by ``detect export`` behind the
:class:`~detect.models.base.Detector` interface. The graph holds torchvision's own
transform (resize to ``imgsz``, ImageNet normalisation), RPN, box head and NMS; it takes
float [3, H, W] images in [0, 1] (:func:`detect.models.faster_rcnn.network.images_to_tensors`)
and returns boxes in the image's px, 1-based labels and scores
(:func:`~detect.models.faster_rcnn.network.to_detections`). ONNX runs one image per call;
a scripted torchvision detector returns ``(losses, detections)`` and, like the PyTorch
model, runs images of different sizes in separate batches (torchvision pads a batch to
its largest image: :func:`~detect.models.faster_rcnn.network.same_size_batches`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402

from detect.device import torch_device  # noqa: E402
from detect.models.base import Detections, Detector  # noqa: E402
from detect.models.faster_rcnn.network import (  # noqa: E402
    images_to_tensors,
    same_size_batches,
    to_detections,
)
from detect.models.runtime.onnx import onnx_session  # noqa: E402
from detect.models.runtime.torchscript import load_script  # noqa: E402
from detect.runs import ModelInfo  # noqa: E402


class _Exported:
    def __init__(self, info: ModelInfo, device: str) -> None:
        self._classes, self._device = info.classes, device

    @property
    def classes(self) -> tuple[str, ...]:
        return self._classes

    @property
    def device(self) -> str:
        return self._device


class OnnxFasterRCNNDetector(_Exported):
    """A Faster R-CNN exported by ``detect export --format onnx``: one image per run."""

    def __init__(self, session: Any, info: ModelInfo, device: str) -> None:
        super().__init__(info, device)
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def predict(self, images: Sequence[np.ndarray], conf: float) -> list[Detections]:
        """Detections per image (channels in recipe order), score >= conf."""
        out = []
        for tensor in images_to_tensors(images, "cpu"):
            boxes, labels, scores = self.session.run(None, {self.input_name: tensor.numpy()})
            output = {"boxes": torch.from_numpy(np.asarray(boxes)),
                      "labels": torch.from_numpy(np.asarray(labels)),
                      "scores": torch.from_numpy(np.asarray(scores))}
            out.append(to_detections(output, conf))
        return out


class TorchScriptFasterRCNNDetector(_Exported):
    """A Faster R-CNN exported by ``detect export --format torchscript``."""

    def __init__(self, net: Any, info: ModelInfo, device: str) -> None:
        super().__init__(info, device)
        self.net = net

    @torch.inference_mode()
    def predict(self, images: Sequence[np.ndarray], conf: float) -> list[Detections]:
        """Detections per image (channels in recipe order), score >= conf."""
        found: dict[int, Detections] = {}
        for batch in same_size_batches(images):
            _, outputs = self.net(images_to_tensors([images[i] for i in batch], self._device))
            found.update((i, to_detections(o, conf)) for i, o in zip(batch, outputs))
        return [found[i] for i in range(len(images))]


def open_exported_faster_rcnn(fmt: str, info: ModelInfo, path: Path, device: str) -> Detector:
    """The detector of an exported Faster R-CNN file.

    Raises:
        RunFolderError: not loadable.
        EnvironmentProblem: onnxruntime is not installed.
    """
    if fmt == "onnx":
        session, target = onnx_session(path, device)
        return OnnxFasterRCNNDetector(session, info, target)
    target = torch_device(device)
    return TorchScriptFasterRCNNDetector(load_script(path, target), info, target)
