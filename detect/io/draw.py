"""Boxes, text and resizing on RGB uint8 images, with Pillow (the base install has no
OpenCV): predict's overlays and the report's galleries. Text uses Pillow's embedded
default font (nothing is fetched); colours are RGB."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

RGB = tuple[int, int, int]


def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=max(6, size))


def grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """H x W uint8 → H x W x 3 (the same value in every channel)."""
    return np.repeat(np.ascontiguousarray(grey)[:, :, None], 3, axis=2)


def draw_boxes(image: np.ndarray, boxes: Sequence[tuple[Sequence[float], RGB, str]], *,
               scale: float = 1.0, width: int = 1, text_px: int = 10) -> np.ndarray:
    """A copy of ``image`` (H x W x 3 uint8) with each xyxy px box (times ``scale``)
    outlined in its colour and its text above it (inside the image)."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(canvas)
    font = _font(text_px)
    for box, colour, text in boxes:
        x1, y1, x2, y2 = (round(float(v) * scale) for v in box)
        draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=colour, width=width)
        if text:
            draw.text((x1, max(y1 - text_px - 2, 0)), text, fill=colour, font=font)
    return np.asarray(canvas)


def caption_strip(text: str, width: int, height: int, text_px: int) -> np.ndarray:
    """A black strip ``height`` x ``width`` px with ``text`` in white."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, height))
    ImageDraw.Draw(strip).text((4, max(0, (height - text_px) // 2 - 1)), text,
                               fill=(255, 255, 255), font=_font(text_px))
    return np.asarray(strip)


def legend_strip(items: Sequence[tuple[RGB, str]], width: int, height: int,
                 text_px: int) -> np.ndarray:
    """A black strip ``height`` x ``width`` px naming what each box colour means: per item
    a square of its colour and its text in white, left to right."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, height))
    draw, font = ImageDraw.Draw(strip), _font(text_px)
    side, x, y = max(4, text_px - 2), 4, max(0, (height - text_px) // 2 - 1)
    for colour, text in items:
        draw.rectangle((x, (height - side) // 2, x + side, (height + side) // 2), fill=colour)
        x += side + 4
        draw.text((x, y), text, fill=(255, 255, 255), font=font)
        x += round(draw.textlength(text, font=font)) + 12
    return np.asarray(strip)


def resize(image: np.ndarray, width: int, height: int, *, smooth: bool) -> np.ndarray:
    """``image`` resized to ``width`` x ``height`` px: averaging the pixels each output
    pixel covers (``smooth``, for shrinking whole slices) or nearest (zoomed crops)."""
    from PIL import Image

    mode = Image.Resampling.BOX if smooth else Image.Resampling.NEAREST
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((width, height), mode))
