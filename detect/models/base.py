"""What every detector family offers to ``predict``, ``eval`` and ``export``.

A detector takes a batch of H × W × 3 uint8 images whose channels are in channel-recipe
order (channel 0 = the recipe's first window; this is the RGB order of the converter's
PNGs) and returns, per image, boxes in internal xyxy px of that image, scores and
0-based class indices (:class:`Detections`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Detections on one image.

    ``xyxy``: float32 (N, 4) px in the input image's frame; ``scores``: float32 (N,) in
    [0, 1]; ``classes``: int64 (N,) 0-based; ``class_scores``: float32 (N, C) per-class
    scores of each box (independent sigmoids for YOLO), or None when the family has none.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    class_scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.xyxy.shape != (n, 4) or self.classes.shape != (n,):
            raise ValueError(
                f"detections must be xyxy (N, 4), scores (N,), classes (N,); got "
                f"{self.xyxy.shape}, {self.scores.shape}, {self.classes.shape}"
            )

    def __len__(self) -> int:
        return len(self.scores)


class Detector(Protocol):
    """What predict.py needs from a model family."""

    @property
    def classes(self) -> tuple[str, ...]: ...

    @property
    def device(self) -> str: ...

    def predict(self, images: Sequence[np.ndarray], conf: float) -> list[Detections]:
        """One :class:`Detections` per image (channels in recipe order), score >= conf."""
        ...
