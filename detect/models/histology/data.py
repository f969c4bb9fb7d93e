"""Histology-head data: tumour crops of a converted split, their augmentation, and class
weights.

A sample is one ground-truth box: ``(crop, geometry, letter)``

- ``crop``: FloatTensor[3, S, S] in [0, 1], channels in channel-recipe order (the PNG's
  RGB order), cut from the converted PNG as :class:`detect.models.histology.config.CropSpec`
  says (the recipe was applied by the converter).
- ``geometry``: FloatTensor[4] = box centre x / W, centre y / H, width / W, height / H
  (W, H: the slice size in px).
- ``letter``: int64, index into A, B, E, G: the annotation's ``histology`` key, else its
  image's ``histology`` (both exist on ``--classes histology`` and ``tumor`` datasets).

Augmentation (train only), seeded by (seed, epoch, index), so a sample gets the same
draw whatever the worker count: box jitter that mimics a detector's box (centre moved by
up to 10 % of the side, each side scaled by 0.85-1.15, in x and y independently); a
horizontal flip (p 0.5; geometry's centre x mirrored with it); brightness and contrast
+-10 % (a small window shift). No vertical flips or rotations: anterior stays anterior.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detect.boxes import XYXY, coco_to_xyxy
from detect.dataset import DatasetInfo, read_rgb
from detect.errors import DatasetError
from detect.histology import LETTERS
from detect.models.histology.crops import CropSpec, box_geometry, extract_crop

log = logging.getLogger(__name__)

JITTER_SHIFT = 0.10
JITTER_SCALE = (0.85, 1.15)
INTENSITY = 0.10


@dataclass(frozen=True)
class CropSample:
    """One ground-truth box of a split."""

    image: Path
    xyxy: XYXY
    letter: int
    patient_id: str
    width: int
    height: int


def _image_path(dataset: DatasetInfo, name: str) -> Path:
    path = (dataset.root / name).resolve()
    if dataset.root.resolve() not in path.parents:
        raise DatasetError(f"{dataset.root}: image path {name!r} points outside the dataset")
    return path


def _letter(annotation: dict, image: dict) -> str | None:
    letter = str(annotation.get("histology") or image.get("histology") or "").strip().upper()
    return letter if letter in LETTERS else None


def crop_samples(dataset: DatasetInfo, split: str) -> list[CropSample]:
    """Every box of ``split`` with a histology letter (boxes without one are logged).

    Raises:
        DatasetError: the split has no box with a letter, or a box names no image.
    """
    coco = dataset.load_coco(split)
    images = {int(im["id"]): im for im in coco.get("images", [])}
    samples, unlettered = [], 0
    for ann in sorted(coco.get("annotations", []), key=lambda a: int(a["id"])):
        image = images.get(int(ann["image_id"]))
        if image is None:
            raise DatasetError(f"{dataset.coco_path(split)}: annotation {ann.get('id')} names "
                               f"image {ann['image_id']}, which is not in the file; re-run "
                               f"detect convert")
        letter = _letter(ann, image)
        if letter is None:
            unlettered += 1
            continue
        samples.append(CropSample(
            _image_path(dataset, str(image["file_name"])), coco_to_xyxy(ann["bbox"]),
            LETTERS.index(letter), str(image.get("patient_id", "")), int(image["width"]),
            int(image["height"])))
    if unlettered:
        log.warning("%s: %d boxes without a histology letter are not used", split, unlettered)
    if not samples:
        raise DatasetError(
            f"{dataset.root}: no tumour boxes with a histology letter (A, B, E, G) in the "
            f"{split} split; the histology head trains on box crops: convert a dataset with "
            f"annotated slices in {split} (detect convert --split)"
        )
    return samples


def jitter_box(xyxy: XYXY, rng: np.random.Generator, width: int, height: int) -> XYXY:
    """A detector-like box around ``xyxy`` (module docstring), kept on the slice."""
    x1, y1, x2, y2 = xyxy
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    cx = (x1 + x2) / 2.0 + rng.uniform(-JITTER_SHIFT, JITTER_SHIFT) * w
    cy = (y1 + y2) / 2.0 + rng.uniform(-JITTER_SHIFT, JITTER_SHIFT) * h
    w *= rng.uniform(*JITTER_SCALE)
    h *= rng.uniform(*JITTER_SCALE)
    nx1, ny1 = min(max(cx - w / 2, 0.0), width - 1.0), min(max(cy - h / 2, 0.0), height - 1.0)
    nx2, ny2 = max(min(cx + w / 2, float(width)), nx1 + 1.0), max(min(cy + h / 2, float(height)),
                                                                  ny1 + 1.0)
    return (float(nx1), float(ny1), float(nx2), float(ny2))


def sample_arrays(
    sample: CropSample, spec: CropSpec, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """(crop uint8 S x S x 3, geometry float32[4]) of a sample; augmented when ``rng``."""
    image = read_rgb(sample.image)
    xyxy = sample.xyxy if rng is None else jitter_box(sample.xyxy, rng, sample.width,
                                                      sample.height)
    crop = extract_crop(image, xyxy, spec)
    geometry = box_geometry(xyxy, sample.width, sample.height)
    if rng is None:
        return crop, geometry
    if rng.random() < 0.5:
        crop = np.ascontiguousarray(crop[:, ::-1])
        geometry[0] = 1.0 - geometry[0]
    gain = 1.0 + rng.uniform(-INTENSITY, INTENSITY)
    bias = 255.0 * rng.uniform(-INTENSITY, INTENSITY)
    crop = np.clip(crop.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    return crop, geometry


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The augmentation draws of one sample in one epoch."""
    return np.random.default_rng([seed & 0xFFFFFFFF, epoch & 0xFFFFFFFF, index & 0xFFFFFFFF])


def letter_counts(samples: Sequence[CropSample]) -> list[int]:
    """Boxes per letter, in A, B, E, G order."""
    counts = Counter(s.letter for s in samples)
    return [counts.get(k, 0) for k in range(len(LETTERS))]


def inverse_frequency_weights(counts: Sequence[int]) -> list[float]:
    """Cross-entropy weights ∝ 1 / count, scaled so the mean weight over the samples is 1
    (a letter with no sample gets 0)."""
    total, present = sum(counts), sum(1 for c in counts if c)
    return [total / (present * c) if c else 0.0 for c in counts]


def balanced_sample_weights(samples: Sequence[CropSample]) -> list[float]:
    """Per-sample draw weights that give every present letter the same share."""
    counts = letter_counts(samples)
    return [1.0 / counts[s.letter] for s in samples]
