"""The model families detect knows, with their sizes and backbones: torch-free, so option
checks (the CLI, the training configs) run before torch loads.

Why each default is what it is: :mod:`detect.models.faster_rcnn` (Faster R-CNN backbones)
and :mod:`detect.train.histology.config` (the histology head).
"""

from __future__ import annotations

from detect.errors import ConfigError

YOLO_FAMILIES = ("yolov8", "yolo11")
YOLO_SIZES = ("n", "s", "m", "l", "x")
FASTER_RCNN = "fasterrcnn"
HISTOLOGY = "histology"
#: Every family a run folder's model.json may name.
FAMILIES = (*YOLO_FAMILIES, FASTER_RCNN, HISTOLOGY)

FASTER_RCNN_BACKBONES = ("resnet50_fpn_v2", "mobilenet_v3_large_fpn")
FASTER_RCNN_DEFAULT_BACKBONE = "resnet50_fpn_v2"
HEAD_BACKBONES = ("resnet18", "mobilenet_v3_small")
HEAD_DEFAULT_BACKBONE = "resnet18"


def check_backbone(backbone: str) -> str:
    """Raise ConfigError unless ``backbone`` is a Faster R-CNN backbone."""
    if backbone not in FASTER_RCNN_BACKBONES:
        raise ConfigError(f"--backbone must be one of {', '.join(FASTER_RCNN_BACKBONES)}, "
                          f"got {backbone!r}")
    return backbone


def check_head_backbone(backbone: str) -> str:
    """Raise ConfigError unless ``backbone`` is a histology-head backbone."""
    if backbone not in HEAD_BACKBONES:
        raise ConfigError(
            f"--backbone for --model histology must be one of {', '.join(HEAD_BACKBONES)}, "
            f"got {backbone!r}"
        )
    return backbone
