"""The names of the model families detect knows, their YOLO sizes and their backbones:
plain names at the bottom of the layers, so model.json can be checked (:mod:`detect.runs`)
without importing a model. :mod:`detect.models.catalog` re-exports them with their checks
and says why each default is what it is.
"""

from __future__ import annotations

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
