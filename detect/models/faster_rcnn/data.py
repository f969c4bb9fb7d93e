"""Faster R-CNN data: a converted COCO split as torchvision detection samples, box-safe
augmentation, and the samplers of ``--class-weighting``.

A sample is ``(image, target)`` as torchvision's detection models take it:

- ``image``: FloatTensor[3, H, W] in [0, 1], channels in channel-recipe order (the PNG's
  RGB order), native size (the model's transform resizes to ``imgsz``).
- ``target``: ``boxes`` FloatTensor[N, 4] xyxy px with ``0 <= x1 < x2 <= W`` and
  ``0 <= y1 < y2 <= H`` (shape [0, 4] for a negative image), ``labels`` Int64Tensor[N]
  (COCO ``category_id``, 1-based; 0 is background), ``image_id`` Int64Tensor[] (the COCO
  image id), ``area`` FloatTensor[N] px², ``iscrowd`` Int64Tensor[N].

Augmentation (train only), in window space, i.e. on the 8-bit windowed channels:
horizontal flip; a small affine (scale 0.9-1.1, translate <= 5 %, rotate <= 10 degrees,
border filled with 0 = below every window, i.e. air); brightness and contrast +-10 % (a
small window level/width shift). No crops. A box pushed below ``MIN_VISIBILITY`` of its
area would be dropped by albumentations; instead the draw is rejected and redrawn (up to
``TRIES`` times), then the sample is used unaugmented, so no tumour ever disappears.
Random draws are seeded by (seed, epoch, index): the same sample gets the same
augmentation whatever the worker count or world size.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402
from torch.utils.data import Dataset, Sampler  # noqa: E402

from detect.boxes import coco_to_xyxy  # noqa: E402
from detect.dataset import DatasetInfo, read_rgb  # noqa: E402
from detect.errors import DatasetError  # noqa: E402

log = logging.getLogger(__name__)

Target = dict[str, torch.Tensor]
MIN_VISIBILITY = 0.5
TRIES = 3


class BoxSafeAugment:
    """Train-time augmentation on (uint8 H x W x 3 image, target with numpy ``boxes`` and
    ``labels``); returns both, never losing a box (module docstring)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.fallbacks = 0
        self.compose = A.Compose(
            [
                A.HorizontalFlip(p=0.5),
                A.Affine(
                    scale=(0.9, 1.1),
                    translate_percent=(-0.05, 0.05),
                    rotate=(-10.0, 10.0),
                    rotate_method="ellipse",
                    border_mode=cv2.BORDER_CONSTANT,
                    fill=0,
                    p=0.5,
                ),
                A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5),
            ],
            bbox_params=A.BboxParams(
                format="pascal_voc", label_fields=["labels"], min_visibility=MIN_VISIBILITY,
                clip=True,
            ),
        )

    def reseed(self, *key: int) -> None:
        """Make the next draws a function of (seed, *key) only."""
        entropy = [self.seed & 0xFFFFFFFF, *(k & 0xFFFFFFFF for k in key)]
        generator = np.random.default_rng(entropy)
        py_random = random.Random(int(generator.integers(0, 2**63 - 1)))
        self.compose.set_random_state(generator, py_random)

    def __call__(
        self, image: np.ndarray, target: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        boxes, labels = target["boxes"], target["labels"]
        for _ in range(TRIES):
            out = self.compose(image=image, bboxes=boxes, labels=labels)
            kept = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
            if len(kept) == len(boxes) and _positive(kept):
                new_labels = np.asarray(out["labels"], dtype=np.int64).reshape(-1)
                return out["image"], {**target, "boxes": kept, "labels": new_labels}
        self.fallbacks += 1
        log.debug("augmentation would lose a box %d times in a row; sample used as is", TRIES)
        return image, target


def _positive(boxes: np.ndarray) -> bool:
    return bool(np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1]))


class CocoSplit(Dataset[tuple[torch.Tensor, Target]]):
    """One split of a converted dataset (``coco/<split>.json`` + ``images/<split>``)."""

    def __init__(
        self, dataset: DatasetInfo, split: str, augment: BoxSafeAugment | None = None
    ) -> None:
        coco = dataset.load_coco(split)
        self.root, self.split, self.augment, self.epoch = dataset.root, split, augment, 0
        self.images: list[dict[str, Any]] = sorted(coco["images"], key=lambda i: int(i["id"]))
        self.boxes: dict[int, list[tuple[Sequence[float], int]]] = {
            int(i["id"]): [] for i in self.images
        }
        for ann in coco["annotations"]:
            if int(ann["image_id"]) not in self.boxes:
                raise DatasetError(
                    f"{dataset.coco_path(split)}: annotation {ann.get('id')} names image "
                    f"{ann['image_id']}, which is not in the file; re-run detect convert"
                )
            self.boxes[int(ann["image_id"])].append((ann["bbox"], int(ann["category_id"])))

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        """Augmentation draws depend on the epoch (call before each epoch's iteration)."""
        self.epoch = epoch

    def image_path(self, index: int) -> Path:
        """The PNG of image ``index``; never a path outside the dataset folder.

        Raises:
            DatasetError: the COCO file names a path outside the dataset.
        """
        name = str(self.images[index]["file_name"])
        path = (self.root / name).resolve()
        if self.root.resolve() not in path.parents:
            raise DatasetError(f"{self.root}: image path {name!r} points outside the dataset")
        return path

    def categories_of(self, index: int) -> set[int]:
        """Category ids (1-based) of the boxes of image ``index`` (empty: negative)."""
        return {label for _, label in self.boxes[int(self.images[index]["id"])]}

    def raw_target(self, index: int) -> dict[str, np.ndarray]:
        info = self.images[index]
        pairs = self.boxes[int(info["id"])]
        boxes = np.array([coco_to_xyxy(b) for b, _ in pairs], dtype=np.float32).reshape(-1, 4)
        if len(boxes) and not _positive(boxes):
            raise DatasetError(
                f"{info['file_name']}: a box has no area ({boxes.tolist()}); re-run detect convert"
            )
        return {"boxes": boxes, "labels": np.array([c for _, c in pairs], dtype=np.int64)}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        info = self.images[index]
        image = read_rgb(self.image_path(index))
        target = self.raw_target(index)
        if self.augment is not None:
            self.augment.reseed(self.epoch, index)
            image, target = self.augment(image, target)
        return to_tensors(image, target, int(info["id"]))


def to_tensors(
    image: np.ndarray, target: dict[str, np.ndarray], image_id: int
) -> tuple[torch.Tensor, Target]:
    """uint8 H x W x 3 + numpy target → the torchvision sample (module docstring)."""
    # a copy: the image may be read-only (from_numpy would warn and share it)
    tensor = torch.tensor(image, dtype=torch.uint8).permute(2, 0, 1).float().div_(255.0)
    boxes = torch.as_tensor(target["boxes"], dtype=torch.float32).reshape(-1, 4)
    return tensor, {
        "boxes": boxes,
        "labels": torch.as_tensor(target["labels"], dtype=torch.int64).reshape(-1),
        "image_id": torch.tensor(image_id, dtype=torch.int64),
        "area": (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]),
        "iscrowd": torch.zeros(len(boxes), dtype=torch.int64),
    }


def collate(
    batch: Sequence[tuple[torch.Tensor, Target]],
) -> tuple[list[torch.Tensor], list[Target]]:
    """Lists of images and targets (images differ in size; the model batches them)."""
    return [image for image, _ in batch], [target for _, target in batch]


def balanced_weights(split: CocoSplit) -> list[float]:
    """Per-image sampling weight: 1 / (number of training images holding the image's rarest
    class), negatives counted as a class of their own; each class then gets about the same
    share of draws."""
    keys = [split.categories_of(i) or {0} for i in range(len(split))]  # 0 = negative
    frequency = Counter(c for classes in keys for c in classes)
    return [max(1.0 / frequency[c] for c in classes) for classes in keys]


class BalancedSampler(Sampler[int]):
    """WeightedRandomSampler's draw (``torch.multinomial`` with replacement), seeded per
    epoch and sharded by rank, so several processes share one balanced epoch."""

    def __init__(
        self, weights: Sequence[float], *, num_replicas: int = 1, rank: int = 0, seed: int = 0
    ) -> None:
        if not weights:
            raise DatasetError("the training split has no images; re-run detect convert")
        self.weights = torch.as_tensor(weights, dtype=torch.double)
        self.num_replicas, self.rank, self.seed, self.epoch = num_replicas, rank, seed, 0
        self.per_replica = math.ceil(len(weights) / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_replica

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        total = self.per_replica * self.num_replicas
        drawn = torch.multinomial(self.weights, total, replacement=True, generator=generator)
        return iter(drawn[self.rank :: self.num_replicas].tolist())


def worker_init_fn(worker_id: int) -> None:
    """Seed python and numpy in a DataLoader worker from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
