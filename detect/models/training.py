"""What every family's training shares (torch-free); the command's options,
:class:`detect.models.registry.TrainConfig`, resolve into a family's config, a subclass of
:class:`RunOptions` whose field defaults are that family's defaults.

- :class:`RunOptions`: the options every family's config shares, checked on construction.
- :class:`TrainResult`, :data:`EpochProgress`, :data:`BatchProgress`: the result, the
  per-epoch callback and the per-step one.
- :class:`TrainServices`: what a family's trainer needs from the stages above
  ``models/`` (scoring lives in ``eval``, which never imports a model); ``detect.train``
  hands it down.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from detect.device import check_device_spec, default_workers
from detect.errors import ConfigError

if TYPE_CHECKING:
    from detect.dataset import DatasetInfo
    from detect.predictions import Prediction

#: ``--amp``: mixed precision on GPUs (``auto``: bf16 where supported); CPU runs are fp32.
AMP_MODES = ("auto", "bf16", "fp16", "off")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
EpochProgress = Callable[[int, int, Mapping[str, Any]], None]
#: ``on_batch(epoch, epochs, step, steps, images_per_s)`` after each training step of an
#: epoch (the families that report within an epoch; YOLO shows ultralytics' own bar).
BatchProgress = Callable[[int, int, int, int, float], None]


def check_training_options(
    *, epochs: int, batch: int, workers: int, imgsz: int | None, weights: Path | None
) -> None:
    """The option checks every ``detect train`` family shares.

    Raises:
        ConfigError: one line naming the option, what it must be and what was given.
    """
    for option, value, low in (("--epochs", epochs, 1), ("--batch", batch, 1),
                               ("--workers", workers, 0)):
        if value < low:
            raise ConfigError(f"{option} must be >= {low}, got {value}")
    if imgsz is not None and (imgsz < 32 or imgsz % 32):
        raise ConfigError(f"--imgsz must be a multiple of 32 px, >= 32; got {imgsz}")
    if weights is not None and not weights.is_file():
        raise ConfigError(
            f"--weights {weights} is not a file; pass a local checkpoint (nothing is "
            f"downloaded), or leave --weights out to train from scratch"
        )


def training_imgsz(requested: int | None, dataset_size: int) -> int:
    """The image size a detector trains at, px: ``--imgsz``, or the dataset's image size
    rounded up to the stride (32) every detector here needs."""
    return requested or max(32, math.ceil(dataset_size / 32) * 32)


def one_of(option: str, value: str, allowed: Sequence[str]) -> None:
    """Raise ConfigError unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"{option} must be one of {', '.join(allowed)}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """The options every family's config shares; a family's config adds its own and sets
    its defaults (``epochs``, ``batch``, ``workers``, ...) as its fields' defaults."""

    data: Path
    epochs: int = 100
    batch: int = 16
    device: str = "auto"
    weights: Path | None = None
    project: Path = Path("runs")
    name: str | None = None
    resume: bool = False
    seed: int = 0
    workers: int = field(default_factory=lambda: min(8, default_workers()))

    def __post_init__(self) -> None:
        check_device_spec(self.device)
        check_training_options(epochs=self.epochs, batch=self.batch, workers=self.workers,
                               imgsz=getattr(self, "imgsz", None), weights=self.weights)
        if self.name is not None and not _NAME.match(self.name):
            raise ConfigError(
                f"--name must be a plain folder name (letters, digits, . _ -), got {self.name!r}"
            )


#: The options every family takes (``detect train``); the rest apply to some families only.
SHARED_OPTIONS = tuple(f.name for f in fields(RunOptions))


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    run_dir: Path
    model_json: Path
    epochs_done: int
    metrics: dict[str, Any]
    seconds: float


@dataclass(frozen=True)
class TrainServices:
    """Scoring a family's trainer needs, handed down by :mod:`detect.train` (the evaluator
    sits above ``models/``). Each is a module-level function, so it travels to spawned
    training processes.

    - ``score_detections(dataset, split, predictions)`` → ``{"mAP50": ..., "mAP50-95": ...}``
      (validation mAP each epoch);
    - ``balanced_accuracy(truth, predicted)`` over A/B/E/G letters (NaN when no truth).
    """

    score_detections: Callable[[DatasetInfo, str, Sequence[Prediction]], dict[str, float]]
    balanced_accuracy: Callable[[Sequence[str], Sequence[str]], float]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
