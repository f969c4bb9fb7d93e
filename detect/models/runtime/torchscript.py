"""TorchScript archives of exported models (``detect export --format torchscript``).

Each family's adapter (:mod:`detect.models.yolo.runtime`,
:mod:`detect.models.faster_rcnn.runtime`) runs its archive, loaded by :func:`load_script`,
with the pre- and post-processing of its PyTorch path. A TorchScript archive holds code
that ``torch.jit.load`` runs: load only files you trust (detect refuses a file whose
SHA-256 differs from the one its model.json records, :mod:`detect.models.runtime.record`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from detect.errors import RunFolderError
from detect.torch_check import require_working_torch


def script_device(spec: str) -> str:
    """``--device`` as the torch device a TorchScript model runs on (``cpu``, ``cuda:0``).

    Raises:
        TrainingStackMissing: torch is not installed (the base install).
        EnvironmentProblem: torch and torchvision do not work together.
    """
    require_working_torch("a TorchScript model")
    from detect.device import torch_device

    return torch_device(spec)


def load_script(path: Path, device: str) -> Any:
    """``torch.jit.load`` on ``device`` (torch form), in eval mode.

    Raises:
        RunFolderError: not a TorchScript archive.
    """
    import torch

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
