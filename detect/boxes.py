"""The one place that converts box formats.

Internal format: absolute pixel ``xyxy`` floats, ``0 <= x1 < x2 <= W`` and
``0 <= y1 < y2 <= H``, in pixel-edge coordinates: the top-left corner of the image is
(0, 0) and a box covering exactly pixel column 0 spans x 0..1.

Conventions of the other formats, all converted here and only here:

- PASCAL VOC (LabelImg, the TCIA annotation archive): integer ``xmin ymin xmax ymax``.
  LabelImg writes the corners of the rectangle drawn on screen, in the same pixel-edge
  frame, without a +1 offset; we read them as-is (``xyxy = (xmin, ymin, xmax, ymax)``).
  This keeps the real archive's boxes identical to the numbers in its files.
- COCO: ``[x, y, w, h]`` with ``x = x1, y = y1, w = x2 - x1, h = y2 - y1``.
- YOLO: ``cx cy w h`` normalised by image width and height, in ``[0, 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

XYXY = tuple[float, float, float, float]


@dataclass(frozen=True)
class ClipResult:
    """A box after clipping to the image, with what clipping did to it."""

    xyxy: XYXY
    clipped: bool
    valid: bool


def _as_xyxy(values: Sequence[float]) -> XYXY:
    if len(values) != 4:
        raise ValueError(f"a box has 4 numbers, got {len(values)}: {list(values)!r}")
    x1, y1, x2, y2 = (float(v) for v in values)
    return (x1, y1, x2, y2)


def voc_to_xyxy(xmin: float, ymin: float, xmax: float, ymax: float) -> XYXY:
    """VOC corners (as written by LabelImg) to internal xyxy px."""
    return _as_xyxy((xmin, ymin, xmax, ymax))


def xyxy_to_voc(xyxy: Sequence[float]) -> tuple[int, int, int, int]:
    """Internal xyxy px to integer VOC corners (rounded outward to keep the box whole)."""
    x1, y1, x2, y2 = _as_xyxy(xyxy)
    return (math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2))


def xyxy_to_coco(xyxy: Sequence[float]) -> list[float]:
    """Internal xyxy px to COCO ``[x, y, w, h]`` px."""
    x1, y1, x2, y2 = _as_xyxy(xyxy)
    return [x1, y1, x2 - x1, y2 - y1]


def coco_to_xyxy(xywh: Sequence[float]) -> XYXY:
    """COCO ``[x, y, w, h]`` px to internal xyxy px."""
    x, y, w, h = _as_xyxy(xywh)
    return (x, y, x + w, y + h)


def xyxy_to_yolo(xyxy: Sequence[float], width: int, height: int) -> XYXY:
    """Internal xyxy px to YOLO normalised ``(cx, cy, w, h)``.

    Raises:
        ValueError: if the image size is not positive.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    x1, y1, x2, y2 = _as_xyxy(xyxy)
    return (
        (x1 + x2) / 2.0 / width,
        (y1 + y2) / 2.0 / height,
        (x2 - x1) / width,
        (y2 - y1) / height,
    )


def yolo_to_xyxy(cxcywh: Sequence[float], width: int, height: int) -> XYXY:
    """YOLO normalised ``(cx, cy, w, h)`` to internal xyxy px."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    cx, cy, w, h = _as_xyxy(cxcywh)
    return (
        (cx - w / 2.0) * width,
        (cy - h / 2.0) * height,
        (cx + w / 2.0) * width,
        (cy + h / 2.0) * height,
    )


def is_finite(xyxy: Sequence[float]) -> bool:
    """True when every corner is a finite number (not inf, -inf or nan)."""
    return all(math.isfinite(v) for v in _as_xyxy(xyxy))


def clip_xyxy(xyxy: Sequence[float], width: int, height: int) -> ClipResult:
    """Clip a box to the image; ``valid`` is False when nothing of positive area is left,
    or when a corner is not finite (an infinite box would otherwise clip to the image)."""
    x1, y1, x2, y2 = _as_xyxy(xyxy)
    if not is_finite((x1, y1, x2, y2)):
        return ClipResult((x1, y1, x2, y2), False, False)
    cx1, cy1 = min(max(x1, 0.0), float(width)), min(max(y1, 0.0), float(height))
    cx2, cy2 = min(max(x2, 0.0), float(width)), min(max(y2, 0.0), float(height))
    clipped = (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2)
    valid = cx2 > cx1 and cy2 > cy1 and x2 > x1 and y2 > y1
    return ClipResult((cx1, cy1, cx2, cy2), clipped, valid)


def area(xyxy: Sequence[float]) -> float:
    """Area in px² (0 for an empty or inverted box)."""
    x1, y1, x2, y2 = _as_xyxy(xyxy)
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every xyxy box in ``a`` [N, 4] with every one in ``b`` [M, 4] → [N, M] float64
    (as ``torchvision.ops.box_iou``); 0 where the union is empty."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes (:func:`box_iou` of one pair)."""
    return float(box_iou(np.array([_as_xyxy(a)]), np.array([_as_xyxy(b)]))[0, 0])
