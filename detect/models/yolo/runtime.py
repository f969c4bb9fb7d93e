"""A YOLO exported by ``detect export`` (ONNX or TorchScript) behind the
:class:`~detect.models.base.Detector` interface, with the pre- and post-processing of the
PyTorch path itself (:mod:`detect.models.yolo.decode`, numpy):
:func:`~detect.models.yolo.decode.model_input` (ultralytics' letterbox to ``imgsz``, pad
114, /255), the graph (ONNX: dynamic batch and size; TorchScript: traced at ``imgsz``),
then :func:`~detect.models.yolo.decode.decode_output`. The ONNX path imports neither torch
nor ultralytics (the base install has neither); TorchScript needs torch."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detect.errors import RunFolderError
from detect.models.base import Detector
from detect.models.runtime.onnx import onnx_session
from detect.models.runtime.torchscript import load_script, script_device
from detect.models.yolo.config import YoloVariant
from detect.models.yolo.decode import YoloDecoding, model_input
from detect.runs import ModelInfo


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


class _Exported(YoloDecoding):
    def __init__(self, info: ModelInfo, variant: YoloVariant, stride: int, device: str) -> None:
        self._classes, self._device = info.classes, device
        self.imgsz, self.iou, self.stride = info.imgsz, info.iou, stride
        self.end2end = variant.end2end

    @property
    def device(self) -> str:
        return self._device


class OnnxYoloDetector(_Exported):
    """A YOLO exported by ``detect export --format onnx``, on ONNX Runtime."""

    def __init__(self, session: Any, info: ModelInfo, variant: YoloVariant, stride: int,
                 device: str) -> None:
        super().__init__(info, variant, stride, device)
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def head(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, tuple[int, int]]:
        """The graph's output and the letterboxed input's (H, W) px."""
        x = model_input(images, self.imgsz)
        raw = self.session.run(None, {self.input_name: x})[0]
        return np.asarray(raw), (x.shape[2], x.shape[3])


class TorchScriptYoloDetector(_Exported):
    """A YOLO exported by ``detect export --format torchscript``."""

    def __init__(self, net: Any, info: ModelInfo, variant: YoloVariant, stride: int,
                 device: str) -> None:
        super().__init__(info, variant, stride, device)
        self.net = net

    def head(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, tuple[int, int]]:
        """The traced head output and the input's (H, W) px."""
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(model_input(images, self.imgsz)).to(self._device)
            raw = self.net(x)
            raw = raw[0] if isinstance(raw, (list, tuple)) else raw
            return raw.float().cpu().numpy(), (x.shape[2], x.shape[3])


def open_exported_yolo(fmt: str, variant: YoloVariant, info: ModelInfo, path: Path,
                       record: Mapping[str, Any], device: str) -> Detector:
    """The detector of an exported YOLO file, as its model.json ``export`` section
    (``record``) describes it.

    Raises:
        RunFolderError: not loadable, or it predicts other classes than model.json's.
        EnvironmentProblem: onnxruntime is not installed.
    """
    stride = int(record.get("stride") or 32)
    if fmt == "onnx":
        session, target = onnx_session(path, device)
        _check_names(session, path, info.classes)
        return OnnxYoloDetector(session, info, variant, stride, target)
    target = script_device(device)
    return TorchScriptYoloDetector(load_script(path, target), info, variant, stride, target)
