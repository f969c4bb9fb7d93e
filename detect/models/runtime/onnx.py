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

from detect.device import check_device_spec
from detect.errors import EnvironmentProblem, RunFolderError

log = logging.getLogger(__name__)


def onnx_session(path: Path, device: str) -> tuple[Any, str]:
    """An ``onnxruntime.InferenceSession`` of ``path`` and the device it runs on (``cpu``,
    ``cuda:0``): ``cpu``, a GPU index (the first of a list), or ``auto`` (GPU 0 when this
    onnxruntime has CUDA).

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
    spec = check_device_spec(device)
    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    target = "cpu"
    providers: list[Any] = ["CPUExecutionProvider"]
    if spec != "cpu" and cuda:
        index = 0 if spec == "auto" else int(spec.split(",")[0])
        target = f"cuda:{index}"
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
    elif spec not in ("cpu", "auto"):
        log.warning("this onnxruntime has no CUDA provider; %s runs on the CPU", path.name)
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
