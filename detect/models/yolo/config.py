"""Options of a YOLO run (``detect train --model yolov8|yolo11|yolo26``), validated on
construction without torch. Its field defaults are the YOLO families' defaults.

Class imbalance (Lung-PET-CT-Dx: E has 5 of 355 patients), ``class_weighting``:

- ``none`` (default): plain training.
- ``loss``: ultralytics' ``cls_pw=0.5``: classification loss weights proportional to
  (1 / class frequency) ** 0.5, normalised to mean 1.
- ``sampler``: repeat-factor sampling (LVIS, Gupta et al. 2019); see
  :func:`detect.models.yolo.run.repeat_factors`.
"""

from __future__ import annotations

from dataclasses import dataclass

from detect.errors import ConfigError
from detect.models.training import AMP_MODES, RunOptions, one_of

SIZES = ("n", "s", "m", "l", "x")
CLASS_WEIGHTING = ("none", "loss", "sampler")
#: ultralytics' optimizer names, spelled as it spells them (``auto``: AdamW with a class-count
#: learning rate on short runs, MuSGD on long ones)
OPTIMIZERS = ("auto", "SGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSprop", "MuSGD")
#: ``cls_pw`` of ``--class-weighting loss``.
LOSS_CLS_PW = 0.5


@dataclass(frozen=True, kw_only=True)
class YoloConfig(RunOptions):
    """Everything one YOLO run needs (``family`` picks the architecture).

    ``imgsz`` None = the dataset's image size rounded up to 32 px. ``nbs`` None =
    ultralytics' nominal batch (64), ``lr0`` None = ultralytics' (its ``auto`` optimizer
    sets its own), ``mosaic`` None = ultralytics' 1.0.
    """

    family: str
    size: str = "n"
    imgsz: int | None = None
    class_weighting: str = "none"
    amp: str = "auto"
    nbs: int | None = None
    optimizer: str = "auto"
    lr0: float | None = None
    mosaic: float | None = None

    def __post_init__(self) -> None:
        one_of("--size", self.size, SIZES)
        one_of("--class-weighting", self.class_weighting, CLASS_WEIGHTING)
        one_of("--amp", self.amp, AMP_MODES)
        one_of("--optimizer", self.optimizer, OPTIMIZERS)
        super().__post_init__()
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


@dataclass(frozen=True)
class YoloVariant:
    """What differs between the YOLO families detect runs through ultralytics.

    ``name``: model.json's family and the prefix of ultralytics' bundled architecture
    (``yolov8n.yaml``). ``end2end``: the NMS-free one-to-one head (YOLO26): the network
    itself returns at most 300 boxes per image, top-k by score, and no NMS runs after it
    (no per-class score vector per box either, so a histology model's letters come from
    its ``label``, or from a histology head).
    """

    name: str
    end2end: bool = False

    def architecture(self, size: str) -> str:
        """ultralytics' bundled architecture file of this family at ``size``."""
        return f"{self.name}{size}.yaml"
