"""Options of Faster R-CNN training (``detect train --model fasterrcnn``), validated on
construction. No torch import here, so the CLI can check options before loading torch.

Backbones and why ``resnet50_fpn_v2`` is the default: see :mod:`detect.models.faster_rcnn.network`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detect.device import default_workers
from detect.errors import ConfigError
from detect.models.training import AMP_MODES, RunOptions

#: ``--backbone``: why each, and why the default: :mod:`detect.models.faster_rcnn.network`.
BACKBONES = ("resnet50_fpn_v2", "mobilenet_v3_large_fpn")
DEFAULT_BACKBONE = "resnet50_fpn_v2"
CLASS_WEIGHTING = ("none", "sampler")
#: Most detections per image the model returns (torchvision's box_detections_per_img).
DETECTIONS_PER_IMAGE = 100
#: Base SGD learning rate per 16 images of the total batch (scaled linearly), per backbone.
#: detect trains from scratch, so both are above torchvision's fine-tuning 0.02 (BatchNorm,
#: warmup and gradient clipping keep them stable). mobilenet, measured on the slow learning
#: test's phantom (tests/train/test_frcnn_learns.py: 256 px, batch 8, 20 epochs, 140
#: iterations): at 0.04 per 16 (lr 0.02) val mAP50 stayed 0.000 to epoch 7 and peaked at
#: 0.131; at 0.08 (lr 0.04) it peaked at 0.419 / 0.346 / 0.397 over three seeds
#: (2026-12-07). resnet50 keeps 0.04: on the same phantom at 0.08 its box classifier's loss
#: sat at ln 2 (0.693, chance) through epochs 2-3, at 0.04 it stayed below (0.44-0.51);
#: neither found a lesion in 4 epochs, so nothing measured argues for raising it.
BASE_LR_PER_16: dict[str, float] = {"resnet50_fpn_v2": 0.04, "mobilenet_v3_large_fpn": 0.08}


@dataclass(frozen=True, kw_only=True)
class FasterRCNNConfig(RunOptions):
    """Everything one Faster R-CNN run needs.

    ``batch`` is the total over all processes (``--batch``, as for YOLO); ``lr`` None is
    the backbone's :data:`BASE_LR_PER_16` x batch / 16. ``world_size`` runs that many CPU
    processes on the gloo backend with ``device="cpu"`` (for tests of the distributed path;
    GPUs come from ``--device 0,1``). ``max_steps`` caps the iterations per epoch (smoke tests,
    benchmarks). ``deterministic`` turns on ``torch.use_deterministic_algorithms`` on the CPU
    (GPU runs are seeded but not bit-exact: roi_align's CUDA backward adds atomically).
    """

    backbone: str = DEFAULT_BACKBONE
    epochs: int = 50
    imgsz: int | None = None
    batch: int = 8
    class_weighting: str = "none"
    workers: int = field(default_factory=lambda: min(4, default_workers()))
    amp: str = "auto"
    world_size: int | None = None
    lr: float | None = None
    max_steps: int | None = None
    deterministic: bool = True

    def __post_init__(self) -> None:
        check_backbone(self.backbone)
        if self.class_weighting not in CLASS_WEIGHTING:
            hint = " (loss weighting is YOLO only)" if self.class_weighting == "loss" else ""
            raise ConfigError(
                f"--class-weighting for fasterrcnn must be one of {', '.join(CLASS_WEIGHTING)}, "
                f"got {self.class_weighting!r}{hint}"
            )
        if self.amp not in AMP_MODES:
            raise ConfigError(f"--amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        super().__post_init__()
        _check_world(self.device, self.world_size, self.batch)
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps}")

    @property
    def devices(self) -> tuple[str, ...]:
        """One entry per process: GPU indices of ``--device 0,1``, or ``cpu`` x world size."""
        text = self.device.strip().lower()
        if text not in ("auto", "cpu"):
            return tuple(text.split(","))
        return (text,) * (self.world_size or 1)


def check_backbone(backbone: str) -> str:
    """Raise ConfigError unless ``backbone`` is a Faster R-CNN backbone."""
    if backbone not in BACKBONES:
        raise ConfigError(f"--backbone must be one of {', '.join(BACKBONES)}, got {backbone!r}")
    return backbone


def _check_world(device: str, world_size: int | None, batch: int) -> None:
    text = device.strip().lower()
    if world_size is not None and (world_size < 1 or text != "cpu"):
        raise ConfigError(
            f"world_size (CPU processes) needs device 'cpu' and >= 1, got {world_size} with "
            f"device {device!r}; for GPUs use --device 0,1"
        )
    processes = world_size or (len(text.split(",")) if text not in ("auto", "cpu") else 1)
    if batch % processes:
        raise ConfigError(
            f"--batch {batch} must be a multiple of the {processes} processes (each gets "
            f"batch / processes images)"
        )
