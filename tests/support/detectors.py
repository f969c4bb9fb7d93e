"""Fake detectors with known answers, for tests of predict and its writers."""

from __future__ import annotations

import numpy as np

from detect.models.base import Detections


class SquareFinder:
    """A fake detector: one box around the pixels brighter than 60 in channel 1."""

    classes = ("A", "B", "E", "G")
    device = "cpu"

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []

    def predict(self, images: list[np.ndarray], conf: float) -> list[Detections]:
        out = []
        for image in images:
            self.images.append(image)
            ys, xs = np.nonzero(image[:, :, 1] > 60)
            n = 1 if len(xs) else 0
            box = [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]] if n else np.zeros((0, 4))
            out.append(Detections(
                xyxy=np.asarray(box, np.float32).reshape(-1, 4),
                scores=np.full(n, 0.9, np.float32), classes=np.zeros(n, np.int64),
                class_scores=np.tile(np.float32([0.6, 0.2, 0.1, 0.1]), (n, 1)),
            ))
        return out


class FixedBoxes:
    """A fake detector: the same boxes (xyxy px, score) on every slice, class A."""

    classes = ("A", "B", "E", "G")
    device = "cpu"

    def __init__(self, boxes: list[tuple[tuple[float, float, float, float], float]]) -> None:
        self.boxes = boxes

    def predict(self, images: list[np.ndarray], conf: float) -> list[Detections]:
        kept = [(xyxy, score) for xyxy, score in self.boxes if score >= conf]
        n = len(kept)
        return [Detections(
            xyxy=np.asarray([xyxy for xyxy, _ in kept], np.float32).reshape(-1, 4),
            scores=np.asarray([score for _, score in kept], np.float32),
            classes=np.zeros(n, np.int64),
            class_scores=np.tile(np.float32([0.7, 0.1, 0.1, 0.1]), (n, 1)),
        ) for _ in images]
