"""YOLO to ONNX or TorchScript through ultralytics' public ``YOLO(...).export``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from detect.errors import RunFolderError
from detect.models.yolo.env import prepare_ultralytics


def export_yolo(weights: Path, fmt: str, *, imgsz: int, work_dir: Path, opset: int) -> Path:
    """Export ``weights`` with ultralytics' public ``YOLO(...).export`` on the CPU: ONNX with
    dynamic batch and size, simplified (onnxslim), at ``opset``; TorchScript traced at
    ``imgsz``. ultralytics writes beside the weights it is given, so a copy in ``work_dir``
    is exported (nothing lands in the run folder). Returns the exported file.

    Raises:
        RunFolderError: ultralytics could not export the checkpoint.
    """
    prepare_ultralytics()  # YOLO_AUTOINSTALL=false: its requirement check never pip-installs
    from ultralytics import YOLO

    args: dict[str, Any] = {"format": fmt, "imgsz": imgsz, "device": "cpu", "batch": 1}
    if fmt == "onnx":
        args.update(dynamic=True, simplify=True, opset=opset)
    copy = work_dir / "model.pt"
    shutil.copyfile(weights, copy)
    try:
        exported = YOLO(str(copy), task="detect").export(**args)
    except Exception as exc:  # ultralytics raises many types for a file it cannot export
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RunFolderError(
            f"ultralytics could not export {weights} to {fmt} ({type(exc).__name__}: "
            f"{first[:200]}); pass the weights of a detect YOLO run"
        ) from None
    return Path(str(exported))
