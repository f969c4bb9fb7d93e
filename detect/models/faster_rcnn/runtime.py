"""A Faster R-CNN exported by ``detect export`` behind the
:class:`~detect.models.base.Detector` interface. The graph holds torchvision's own
transform (resize to ``imgsz``, ImageNet normalisation), RPN, box head and NMS; it takes a
float [3, H, W] image in [0, 1] (:func:`image_input`) and returns boxes in the image's px,
1-based labels and scores (:func:`detections_of`). ONNX runs one image per call, in numpy
alone (the base install has no torch); a scripted torchvision detector (TorchScript, needs
torch) returns ``(losses, detections)`` and, like the PyTorch model, runs images of
different sizes in separate batches (torchvision pads a batch to its largest image:
:func:`same_size_batches`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detect.models.base import Detections, Detector
from detect.models.runtime.onnx import onnx_session
from detect.models.runtime.torchscript import load_script, script_device
from detect.runs import ModelInfo


def image_input(image: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 (recipe order) → float32 [3, H, W] in [0, 1].

    Raises:
        ValueError: not an H x W x 3 uint8 image.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected H x W x 3 uint8 images, got {image.shape} {image.dtype}")
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / np.float32(255)


def same_size_batches(images: Sequence[np.ndarray]) -> list[list[int]]:
    """Indices of ``images`` grouped by size (H, W), in first-seen order.

    torchvision's transform pads every image of a batch to the batch's largest size
    (``GeneralizedRCNNTransform.batch_images``, zeros after normalisation), so an image
    batched with a larger one is seen with a band of padding and gets other detections
    near that edge than alone. Running each size as its own batch makes an image's
    detections depend on the image only: the same in ``detect predict`` whatever else
    is in the batch, and the same as the exported ONNX graph, which runs one image at a
    time (a 384 x 512 crop batched with 512 x 512 slices had failed the parity check).
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(tuple(image.shape[:2]), []).append(index)
    return list(groups.values())


def detections_of(output: Mapping[str, Any], conf: float) -> Detections:
    """One output (``boxes``, 1-based ``labels``, ``scores``; arrays or tensors) →
    :class:`Detections` with 0-based classes, score >= conf."""
    boxes, labels, scores = (np.asarray(output[k].detach().cpu() if hasattr(output[k], "detach")
                                        else output[k]) for k in ("boxes", "labels", "scores"))
    keep = scores >= conf
    return Detections(xyxy=boxes[keep].astype(np.float32).reshape(-1, 4),
                      scores=scores[keep].astype(np.float32),
                      classes=(labels[keep] - 1).astype(np.int64), class_scores=None)


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
        for image in images:
            boxes, labels, scores = self.session.run(None, {self.input_name: image_input(image)})
            out.append(detections_of({"boxes": boxes, "labels": labels, "scores": scores}, conf))
        return out


class TorchScriptFasterRCNNDetector(_Exported):
    """A Faster R-CNN exported by ``detect export --format torchscript``."""

    def __init__(self, net: Any, info: ModelInfo, device: str) -> None:
        super().__init__(info, device)
        self.net = net

    def predict(self, images: Sequence[np.ndarray], conf: float) -> list[Detections]:
        """Detections per image (channels in recipe order), score >= conf."""
        import torch

        found: dict[int, Detections] = {}
        with torch.inference_mode():
            for batch in same_size_batches(images):
                tensors = [torch.from_numpy(image_input(images[i])).to(self._device)
                           for i in batch]
                _, outputs = self.net(tensors)
                found.update((i, detections_of(o, conf)) for i, o in zip(batch, outputs))
        return [found[i] for i in range(len(images))]


def open_exported_faster_rcnn(fmt: str, info: ModelInfo, path: Path, device: str) -> Detector:
    """The detector of an exported Faster R-CNN file.

    Raises:
        RunFolderError: not loadable.
        EnvironmentProblem: onnxruntime (ONNX) or torch (TorchScript) is not installed.
    """
    if fmt == "onnx":
        session, target = onnx_session(path, device)
        return OnnxFasterRCNNDetector(session, info, target)
    target = script_device(device)
    return TorchScriptFasterRCNNDetector(load_script(path, target), info, target)
