"""ONNX Runtime sessions for exported models (``detect export --format onnx``).

Each family's adapter (:mod:`detect.models.yolo.runtime`,
:mod:`detect.models.faster_rcnn.runtime`) runs its graph through :func:`onnx_session`
with the pre- and post-processing of its PyTorch path. ONNX Runtime uses the CUDA
execution provider when the device is a GPU and the installed onnxruntime has it, else the
CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from detect.device import torch_device
from detect.errors import EnvironmentProblem, RunFolderError

log = logging.getLogger(__name__)


def onnx_session(path: Path, device: str) -> tuple[Any, str]:
    """An ``onnxruntime.InferenceSession`` of ``path`` and the device it runs on (torch
    form: ``cpu``, ``cuda:0``).

    Raises:
        EnvironmentProblem: onnxruntime is not installed.
        RunFolderError: not a loadable ONNX model.
    """
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
