"""Faster R-CNN checkpoints and metrics.csv columns, in forms any reader can trust.

``weights/last.pt`` and ``weights/best.pt`` hold only tensors and primitive containers, so
``torch.load(path, weights_only=True)`` reads them (no pickled classes, no numpy objects)::

    {"format": "detect-fasterrcnn", "version": 2, "kind": "last" | "best",
     "backbone": str, "classes": [str], "imgsz": int, "epoch": int, "model": state_dict,
     # last.pt only, for --resume:
     "epochs": int, "optimizer": ..., "scheduler": ..., "scaler": ..., "best_map50": float,
     "best_epoch": int, "history": [metrics.csv rows], "world_size": int,
     "rng": [per-rank {"python": [...], "numpy": {...}, "torch": ByteTensor,
                        "cuda": ByteTensor | None}]}

metrics.csv has one row per epoch with :data:`METRIC_COLUMNS`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402

from detect.errors import ConfigError, RunFolderError  # noqa: E402
from detect.models.checkpoint import read_checkpoint, save_checkpoint  # noqa: E402
from detect.models.faster_rcnn.engine import LOSS_NAMES  # noqa: E402
from detect.models.faster_rcnn.network import CHECKPOINT_FORMAT, CHECKPOINT_VERSION  # noqa: E402

METRIC_COLUMNS = (
    "epoch", "lr", "loss", *LOSS_NAMES, "mAP50", "mAP50-95", "time_s", "images_per_s",
)


def rng_state(device: torch.device) -> dict[str, Any]:
    """Python, numpy, torch (and this process's CUDA) RNG states as tensors and lists."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": [int(version), [int(v) for v in internal], gauss],
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    numpy = state["numpy"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (numpy["kind"], keys, int(numpy["pos"]), int(numpy["has_gauss"]), float(numpy["cached"]))
    )
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)



def load_checkpoint(path: Path, kind: str = "last") -> dict[str, Any]:
    """Read a detect Faster R-CNN checkpoint with ``weights_only=True``.

    Raises:
        RunFolderError: missing, unreadable, or not a detect Faster R-CNN ``kind`` checkpoint.
    """
    if not path.is_file():
        raise RunFolderError(f"no {path.name} in {path.parent}; nothing to resume, start a new run")
    try:
        data = read_checkpoint(path)
    except ConfigError as exc:
        raise RunFolderError(
            f"{path}: not a readable checkpoint ({exc}); start a new run"
        ) from None
    if data.get("format") != CHECKPOINT_FORMAT:
        raise RunFolderError(f"{path}: not a detect Faster R-CNN checkpoint (format "
                             f"{CHECKPOINT_FORMAT!r} expected)")
    if data.get("version") != CHECKPOINT_VERSION or data.get("kind") != kind:
        raise RunFolderError(
            f"{path}: expected a version {CHECKPOINT_VERSION} {kind!r} checkpoint, found version "
            f"{data.get('version')!r} kind {data.get('kind')!r}"
        )
    return data


__all__ = ["METRIC_COLUMNS", "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]
