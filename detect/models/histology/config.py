"""Options of the histology head (``detect train --model histology``), validated on
construction. No torch import here, so the CLI can check options before loading torch.

The head is a classifier on tumour crops that says A, B, E or G (see
:mod:`detect.models.histology.data` for the crop, :mod:`detect.models.histology.network`
for the network and :mod:`detect.models.histology.loop` for training).

Defaults and why:

- ``crop``: 64 px crops, a margin of 25 % of the box side each way but at least 8 px
  (:class:`CropSpec`): a Lung-PET-CT-Dx box is 10-100 px on a 512 px slice, so 64 px keeps
  the detail of most boxes without upsampling tiny ones into mush, and the margin shows
  the tumour's border and the tissue around it (pleura, vessels, mediastinum).
- ``backbone`` ``resnet18`` (torchvision, ``weights=None``): plain and robust from
  scratch on little data (on the phantom it reached 0.875 val patient balanced accuracy
  in 15 epochs where ``mobilenet_v3_small`` stayed at chance: from scratch, with few
  steps, its BatchNorm statistics lag); ``mobilenet_v3_small`` is the smaller, faster
  alternative for large datasets.
- ``class_weighting`` ``loss``: inverse-frequency weighted cross-entropy. In the real
  collection E has 5 of 355 patients (A 251); unweighted, a head learns never to say E or
  B and balanced accuracy collapses. A balanced sampler (``sampler``) would show each of
  the few E crops ~20x per epoch while skipping most A crops; the weighted loss keeps
  every crop once per epoch with the same expected gradient per letter.
- ``geometry``: the box's place and size on the slice (centre x/W, y/H, side w/W, h/H)
  go into the classifier beside the crop: the crop is resized to a fixed size, so without
  them the head could not know size or place, which differ by histology (A and E are
  peripheral, B and G central; E is large).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detect.device import default_workers
from detect.errors import ConfigError
from detect.models.histology.crops import CropSpec
from detect.models.training import RunOptions

#: ``--backbone`` of the head (module docstring: why resnet18 is the default).
BACKBONES = ("resnet18", "mobilenet_v3_small")
DEFAULT_BACKBONE = "resnet18"
CLASS_WEIGHTING = ("none", "loss", "sampler")
DEFAULT_CLASS_WEIGHTING = "loss"


@dataclass(frozen=True, kw_only=True)
class HistologyConfig(RunOptions):
    """Everything one histology-head run needs (module docstring: defaults).

    ``max_steps`` caps the optimiser steps per epoch (tests, benchmarks); ``lr`` is
    AdamW's peak learning rate (cosine decay to 1 % over the run, no warm-up);
    ``deterministic`` turns on ``torch.use_deterministic_algorithms`` on the CPU.
    """

    backbone: str = DEFAULT_BACKBONE
    epochs: int = 30
    crop: CropSpec = field(default_factory=CropSpec)
    batch: int = 32
    class_weighting: str = DEFAULT_CLASS_WEIGHTING
    workers: int = field(default_factory=lambda: min(4, default_workers()))
    lr: float = 1e-3
    weight_decay: float = 0.05
    geometry: bool = True
    augment: bool = True
    max_steps: int | None = None
    deterministic: bool = True

    def __post_init__(self) -> None:
        check_head_backbone(self.backbone)
        if self.class_weighting not in CLASS_WEIGHTING:
            raise ConfigError(
                f"--class-weighting for histology must be one of {', '.join(CLASS_WEIGHTING)}, "
                f"got {self.class_weighting!r}"
            )
        super().__post_init__()  # no imgsz: the crop size is the head's image size
        if not (self.lr > 0 and self.weight_decay >= 0):
            raise ConfigError(f"lr must be > 0 and weight_decay >= 0, got {self.lr}, "
                              f"{self.weight_decay}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps}")

    @property
    def imgsz(self) -> int:
        """The head's image size: the crop size, px."""
        return self.crop.size


def check_head_backbone(backbone: str) -> str:
    """Raise ConfigError unless ``backbone`` is a histology-head backbone."""
    if backbone not in BACKBONES:
        raise ConfigError(
            f"--backbone for --model histology must be one of {', '.join(BACKBONES)}, "
            f"got {backbone!r}"
        )
    return backbone
