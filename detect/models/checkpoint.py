"""Reading and writing torch checkpoints safely.

Every checkpoint detect reads from a user is opened with ``torch.load(weights_only=True)``:
tensors and primitive containers only, no pickled classes, so a crafted file cannot run
code. detect's own checkpoints (Faster R-CNN, the histology head) hold nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from detect.errors import ConfigError
from detect.io.atomic import atomic_path
from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402  (after the check, so a broken pair fails with one line)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` on the CPU, as a dict.

    Raises:
        ConfigError: missing, or not a weights-only loadable dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"--weights {path} is not a file; pass a local checkpoint (nothing is downloaded)"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a checkpoint"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"--weights {path} is not a weights-only torch checkpoint ({type(exc).__name__}: "
            f"{first[:200]}); pass a torchvision state_dict or a detect last.pt/best.pt"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"--weights {path}: expected a dict of tensors, got {type(data).__name__}"
        )
    return data


def state_dict_of(data: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The model state dict inside a checkpoint: detect's ``{"model": ...}`` or a plain
    torchvision state dict (``{"model": ...}`` of torchvision's references works too)."""
    inner = data.get("model")
    source = inner if isinstance(inner, Mapping) else data
    return {k: v for k, v in source.items() if isinstance(v, torch.Tensor)}


def save_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    """``torch.save`` of a plain dict, atomically (never half a file)."""
    with atomic_path(path) as tmp:
        torch.save(dict(payload), tmp)
