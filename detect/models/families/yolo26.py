"""YOLO26 (ultralytics 8.4): NMS-free. Its one-to-one head returns at most 300 boxes per
image, top-k by score, and nothing runs after the network but the score threshold; the
run trains and validates with that head (ultralytics' ``nms=False``). Everything else is
the YOLO engine of :mod:`detect.models.families.yolo`."""

from __future__ import annotations

from detect.models.families.yolo import YoloFamily
from detect.models.yolo.config import YoloVariant

FAMILIES = (
    YoloFamily(YoloVariant("yolo26", end2end=True),
               "YOLO26 (ultralytics), sizes n-x, NMS-free", rank=12),
)
