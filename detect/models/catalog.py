"""The model families detect knows, with their sizes and backbones: torch-free, so option
checks (the CLI, the training configs) run before torch loads. The names themselves live in
:mod:`detect.families` (below the layers that read model.json).

Why each default is what it is: :mod:`detect.models.faster_rcnn` (Faster R-CNN backbones)
and :mod:`detect.train.histology.config` (the histology head).
"""

from __future__ import annotations

from detect.errors import ConfigError
from detect.families import (
    FAMILIES,
    FASTER_RCNN,
    FASTER_RCNN_BACKBONES,
    FASTER_RCNN_DEFAULT_BACKBONE,
    HEAD_BACKBONES,
    HEAD_DEFAULT_BACKBONE,
    HISTOLOGY,
    YOLO_FAMILIES,
    YOLO_SIZES,
)

__all__ = [
    "FAMILIES",
    "FASTER_RCNN",
    "FASTER_RCNN_BACKBONES",
    "FASTER_RCNN_DEFAULT_BACKBONE",
    "HEAD_BACKBONES",
    "HEAD_DEFAULT_BACKBONE",
    "HISTOLOGY",
    "YOLO_FAMILIES",
    "YOLO_SIZES",
    "check_backbone",
    "check_head_backbone",
]


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
