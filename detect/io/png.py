"""PNG in and out without OpenCV (the base install has none).

- :func:`encode_png`: 8-bit grey or RGB, zlib at ``level`` and no row filter. On windowed
  CT slices libpng's adaptive filters cost 40 % of the encode time and make the files no
  smaller (real B0021 slices: 11 ms and 276 kB per 512 px image against 19 ms and 287 kB
  with them), so every row is written with filter 0 (None), as detect always wrote them.
- :func:`read_png`: decoded by Pillow (a dependency of highdicom), as RGB.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from detect.errors import DatasetError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: zlib level 1: the fastest that still compresses windowed CT well (see the docstring).
DEFAULT_LEVEL = 1


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def encode_png(image: np.ndarray, level: int = DEFAULT_LEVEL) -> bytes:
    """H x W (grey) or H x W x 3 (RGB, in that order) uint8 → PNG bytes.

    Raises:
        ValueError: not an 8-bit grey or RGB image.
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (
            image.ndim == 3 and image.shape[2] != 3) or 0 in image.shape[:2]:
        raise ValueError(f"expected an H x W or H x W x 3 uint8 image, got {image.shape} "
                         f"{image.dtype}")
    height, width = image.shape[:2]
    colour_type = 2 if image.ndim == 3 else 0
    rows = np.zeros((height, 1 + image[0].size), dtype=np.uint8)  # filter byte 0 per row
    rows[:, 1:] = image.reshape(height, -1)
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (SIGNATURE + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + _chunk(b"IEND", b""))


def read_png(path: Path | str) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB.

    Raises:
        DatasetError: missing or unreadable.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.ascontiguousarray(np.asarray(image.convert("RGB")))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"cannot read image {path} ({type(exc).__name__}); re-run detect "
                           f"convert") from None
