"""How the histology head sees a box: a square crop around it, and the box's place and
size on the slice. The same code cuts crops in training and in prediction, so the head
always sees what it was trained on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from detect.boxes import XYXY
from detect.errors import ConfigError

DEFAULT_CROP_SIZE = 64
DEFAULT_MARGIN = 0.25
DEFAULT_MIN_MARGIN_PX = 8.0


@dataclass(frozen=True)
class CropSpec:
    """How a box becomes a crop (exactly the same in training and prediction).

    The box is grown by ``max(margin x side, min_margin_px)`` on each side, separately in
    x and y, then the shorter side of that region is grown (centred) to make it square,
    so the tissue keeps its aspect ratio; the square is cut from the slice (pixels
    outside the slice are 0, below every window: air) and resized to ``size`` x ``size``
    px (area interpolation when shrinking, bilinear when enlarging).
    """

    size: int = DEFAULT_CROP_SIZE
    margin: float = DEFAULT_MARGIN
    min_margin_px: float = DEFAULT_MIN_MARGIN_PX

    def __post_init__(self) -> None:
        if self.size < 32 or self.size % 32:
            raise ConfigError(f"crop size (--imgsz) must be a multiple of 32 px, >= 32; got "
                              f"{self.size}")
        if not 0.0 <= self.margin <= 2.0:
            raise ConfigError(f"crop margin must be in [0, 2] (fraction of the box side), got "
                              f"{self.margin}")
        if not 0.0 <= self.min_margin_px <= 256.0:
            raise ConfigError(f"crop min_margin_px must be in [0, 256] px, got "
                              f"{self.min_margin_px}")

    def to_dict(self) -> dict[str, Any]:
        """model.json's ``crop`` (the size is model.json's ``imgsz``)."""
        return {"margin": self.margin, "min_margin_px": self.min_margin_px,
                "rule": "box grown by max(margin * side, min_margin_px) each way, made "
                        "square around its centre, outside the slice = 0, resized"}

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> CropSpec:
        """From a histology model.json (``imgsz`` + ``crop``).

        Raises:
            ConfigError: ``crop`` is missing or malformed.
        """
        crop = manifest.get("crop")
        try:
            return cls(int(manifest["imgsz"]), float(crop["margin"]),  # type: ignore[index]
                       float(crop["min_margin_px"]))  # type: ignore[index]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a crop description: {exc!r} in {crop!r}") from None


def crop_region(xyxy: XYXY, spec: CropSpec) -> tuple[float, float, float]:
    """The square region a box is cut from: (centre x, centre y, side), px."""
    x1, y1, x2, y2 = xyxy
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    grown_w = w + 2 * max(spec.margin * w, spec.min_margin_px)
    grown_h = h + 2 * max(spec.margin * h, spec.min_margin_px)
    return (x1 + x2) / 2.0, (y1 + y2) / 2.0, max(grown_w, grown_h)


def extract_crop(image: np.ndarray, xyxy: XYXY, spec: CropSpec) -> np.ndarray:
    """The ``spec.size`` x ``spec.size`` x 3 uint8 crop of a box (CropSpec docstring);
    ``image`` is H x W x 3 uint8 in recipe order."""
    cx, cy, side = crop_region(xyxy, spec)
    x0, y0 = int(np.floor(cx - side / 2.0)), int(np.floor(cy - side / 2.0))
    n = max(1, int(np.ceil(side)))
    height, width = image.shape[:2]
    patch = np.zeros((n, n, image.shape[2]), np.uint8)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + n, width), min(y0 + n, height)
    if sx1 > sx0 and sy1 > sy0:
        patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    import cv2  # here: the family registry reads this module, and the CLI's start stays light

    interpolation = cv2.INTER_AREA if n > spec.size else cv2.INTER_LINEAR
    resized = cv2.resize(patch, (spec.size, spec.size), interpolation=interpolation)
    return np.ascontiguousarray(resized.reshape(spec.size, spec.size, -1))


def box_geometry(xyxy: XYXY, width: int, height: int) -> np.ndarray:
    """float32 [centre x / W, centre y / H, w / W, h / H] of a box on a W x H slice."""
    x1, y1, x2, y2 = xyxy
    return np.array([(x1 + x2) / 2.0 / width, (y1 + y2) / 2.0 / height,
                     (x2 - x1) / width, (y2 - y1) / height], dtype=np.float32)
