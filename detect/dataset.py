"""Reading a converted dataset folder (contract 2), for everything after ``convert``.

The folder's ``dataset.json`` is the source of truth; this module checks it is one and
hands out its parts. Writing it is ``detect.convert``'s job.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detect.errors import DatasetError
from detect.io.jsonfile import read_json
from detect.io.png import read_png
from detect.recipe import ChannelRecipe

DATASET_FORMAT = "detect-dataset"
MAX_MANIFEST_BYTES = 512_000_000  # the phantom demo's is 38 kB; the collection's ~30 MB
DATASET_VERSION = 1
SPLITS = ("train", "val", "test")
#: ``detect convert --split`` default: train, val, test fractions by patient.
DEFAULT_SPLIT = (0.7, 0.15, 0.15)


@dataclass(frozen=True)
class DatasetInfo:
    """A converted dataset folder, as its dataset.json describes it."""

    root: Path
    manifest: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def class_mode(self) -> str:
        return str(self.manifest["class_mode"])

    @property
    def recipe(self) -> ChannelRecipe:
        return ChannelRecipe.from_dict(self.manifest["recipe"])

    @property
    def splits(self) -> dict[str, list[str]]:
        """Patient IDs of each split."""
        return {name: list(ids) for name, ids in self.manifest["splits"].items()}

    @property
    def fingerprint(self) -> str:
        """sha256 of the dataset.json bytes: names exactly this conversion."""
        return hashlib.sha256((self.root / "dataset.json").read_bytes()).hexdigest()

    @property
    def image_size(self) -> int:
        """The largest native image side in px (the default training size)."""
        return int(self.manifest.get("image_size", 512))

    def coco_path(self, split: str) -> Path:
        """The COCO file of a split.

        Raises:
            DatasetError: unknown split or missing file.
        """
        if split not in SPLITS:
            raise DatasetError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        path = self.root / "coco" / f"{split}.json"
        if not path.is_file():
            raise DatasetError(f"{self.root}: missing coco/{split}.json; re-run detect convert")
        return path

    def load_coco(self, split: str) -> dict[str, Any]:
        """The COCO dict of a split (images carry patient_id, sop_instance_uid, ...)."""
        return dict(json.loads(self.coco_path(split).read_text()))


def read_rgb(path: Path | str) -> np.ndarray:
    """A converted PNG as H x W x 3 uint8 in recipe (RGB) order.

    Raises:
        DatasetError: missing or unreadable.
    """
    return read_png(path)


def load_dataset(path: Path | str) -> DatasetInfo:
    """Open a converted dataset folder (or its dataset.json).

    Raises:
        DatasetError: the folder is not a complete detect dataset.
    """
    root = Path(path)
    if root.is_file() and root.name == "dataset.json":
        root = root.parent
    manifest_path = root / "dataset.json"
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    if not manifest_path.is_file():
        raise DatasetError(
            f"{root} is not a detect dataset (no dataset.json); make one with "
            f"'detect convert DICOM_ROOT ANNOTATION_ROOT {root}'"
        )
    manifest = read_json(manifest_path, what="dataset.json", max_bytes=MAX_MANIFEST_BYTES,
                         error=DatasetError,
                         hint="pass a dataset folder written by detect convert")
    if not isinstance(manifest, dict) or manifest.get("format") != DATASET_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise DatasetError(f"{manifest_path}: expected format {DATASET_FORMAT!r}, found {found!r}")
    missing = [k for k in ("classes", "class_mode", "recipe", "splits") if k not in manifest]
    if missing:
        raise DatasetError(f"{manifest_path}: incomplete, missing {', '.join(missing)}")
    return DatasetInfo(root=root, manifest=manifest)
