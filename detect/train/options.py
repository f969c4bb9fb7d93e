"""What ``detect train`` takes and gives, shared by every model family: the options
(:class:`TrainConfig`, validated on construction without importing torch), the result
(:class:`TrainResult`) and the per-epoch progress callback (:data:`EpochProgress`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from detect.config import check_training_options, default_workers
from detect.device import check_device_spec
from detect.errors import ConfigError
from detect.models.catalog import (
    FAMILIES,
    YOLO_FAMILIES,
    YOLO_SIZES,
    check_backbone,
    check_head_backbone,
)

MODELS = FAMILIES
YOLO_MODELS = YOLO_FAMILIES
SIZES = YOLO_SIZES
CLASS_WEIGHTING = ("auto", "none", "loss", "sampler")
AMP_MODES = ("auto", "bf16", "fp16", "off")
#: ultralytics' optimizers (``auto``: AdamW with a class-count learning rate on short runs)
YOLO_OPTIMIZERS = ("auto", "SGD", "Adam", "AdamW", "NAdam", "RAdam", "RMSProp")
LOSS_CLS_PW = 0.5
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
EpochProgress = Callable[[int, int, Mapping[str, Any]], None]


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """The options every training family shares (``detect train --help``); each family's
    config adds its own and may give these other defaults."""

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

    def run_options(self) -> dict[str, Any]:
        """The shared options as keyword arguments (to build another family's config)."""
        return {f.name: getattr(self, f.name) for f in fields(RunOptions)}


@dataclass(frozen=True, kw_only=True)
class TrainConfig(RunOptions):
    """Options of ``detect train`` (see its --help). ``imgsz`` None = dataset image size."""

    model: str
    size: str = "n"
    imgsz: int | None = None
    class_weighting: str = "auto"  # auto = none for detectors, loss for histology
    amp: str = "auto"
    backbone: str | None = None  # fasterrcnn / histology; None = the family's default
    nbs: int | None = None  # YOLO nominal batch; None = ultralytics' 64
    optimizer: str = "auto"  # YOLO
    lr0: float | None = None  # YOLO; needs an optimizer other than auto
    mosaic: float | None = None  # YOLO mosaic probability; None = ultralytics' 1.0

    def __post_init__(self) -> None:
        _one_of("--model", self.model, MODELS)
        _one_of("--size", self.size, SIZES)
        _one_of("--class-weighting", self.class_weighting, CLASS_WEIGHTING)
        if self.class_weighting == "auto":  # resolved here, so every reader sees the mode
            auto = "loss" if self.model == "histology" else "none"
            object.__setattr__(self, "class_weighting", auto)
        _one_of("--amp", self.amp, AMP_MODES)
        super().__post_init__()
        if self.backbone is not None:
            if self.model not in ("fasterrcnn", "histology"):
                raise ConfigError(
                    f"--backbone is for --model fasterrcnn or histology, not {self.model}"
                )
            (check_backbone if self.model == "fasterrcnn" else check_head_backbone)(self.backbone)
        self._check_yolo_options()

    def _check_yolo_options(self) -> None:
        given = [option for option, value in (("--nbs", self.nbs), ("--lr0", self.lr0),
                                              ("--mosaic", self.mosaic)) if value is not None]
        given += ["--optimizer"] if self.optimizer != "auto" else []
        if given and self.model not in YOLO_MODELS:
            raise ConfigError(f"{', '.join(given)}: for the YOLO models, not {self.model}")
        _one_of("--optimizer", self.optimizer, YOLO_OPTIMIZERS)
        if self.nbs is not None and self.nbs < 1:
            raise ConfigError(f"--nbs must be >= 1 images, got {self.nbs}")
        if self.lr0 is not None:
            if not 0 < self.lr0 <= 1:  # also refuses NaN
                raise ConfigError(f"--lr0 must be in (0, 1], got {self.lr0}")
            if self.optimizer == "auto":
                raise ConfigError("--lr0 needs --optimizer (SGD, AdamW...): ultralytics' auto "
                                  "optimizer sets its own learning rate")
        if self.mosaic is not None and not 0 <= self.mosaic <= 1:
            raise ConfigError(f"--mosaic must be a probability in [0, 1], got {self.mosaic}")


def _one_of(option: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{option} must be one of {', '.join(allowed)}, got {value!r}")


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    run_dir: Path
    model_json: Path
    epochs_done: int
    metrics: dict[str, Any]
    seconds: float
