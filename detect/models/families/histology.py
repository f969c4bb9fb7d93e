"""The histology head: a classifier on tumour crops that says A, B, E or G for a box any
detector found (:mod:`detect.models.histology`). ``--imgsz`` is its crop size."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from detect.errors import RunFolderError
from detect.histology import LETTERS
from detect.models.family import CLASSIFIER, Family
from detect.models.histology.config import BACKBONES, HistologyConfig
from detect.models.histology.crops import DEFAULT_CROP_SIZE, CropSpec

if TYPE_CHECKING:
    from detect.models.histology.network import HistologyHead
    from detect.models.training import (
        BatchProgress,
        EpochProgress,
        RunOptions,
        TrainResult,
        TrainServices,
    )
    from detect.runs import ModelInfo

#: model.json ``crop`` fields and their largest values.
CROP_LIMITS = (("margin", 2.0), ("min_margin_px", 256.0))


def _fail(where: Path, field: str, expected: str, value: Any) -> RunFolderError:
    return RunFolderError(f"{where}: {field} must be {expected}, found {str(value)[:60]!r}")


class HistologyFamily(Family):
    """The A/B/E/G head (module docstring)."""

    name = "histology"
    summary = "the histology head (A/B/E/G of detected boxes), --backbone resnet18 or " \
              "mobilenet_v3_small"
    rank = 30
    role = CLASSIFIER
    config_type = HistologyConfig
    options = ("imgsz", "class_weighting", "backbone")
    thresholds: ClassVar[Mapping[str, float]] = MappingProxyType({})

    def config_values(self, given: Mapping[str, Any]) -> dict[str, Any]:
        values = {k: v for k, v in given.items() if k != "imgsz"}
        values["crop"] = CropSpec(size=given.get("imgsz") or DEFAULT_CROP_SIZE)
        return values

    def training_imgsz(self, requested: int | None, dataset_size: int) -> int:
        return requested or DEFAULT_CROP_SIZE

    def check_manifest(self, data: Mapping[str, Any], where: Path) -> None:
        if data.get("backbone") not in BACKBONES:
            raise _fail(where, "backbone", f"one of {', '.join(BACKBONES)} for a histology "
                        f"head", data.get("backbone"))
        if data.get("classes") != list(LETTERS) or data.get("class_mode") != "histology":
            raise _fail(where, "classes", f"{list(LETTERS)} (class_mode histology) for a "
                        f"histology head", data.get("classes"))
        crop = data.get("crop")
        if not isinstance(crop, dict):
            raise _fail(where, "crop", "an object with margin and min_margin_px (retrain with "
                        "detect train --model histology)", crop)
        for key, high in CROP_LIMITS:
            value = crop.get(key)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or not 0.0 <= value <= high):
                raise _fail(where, f"crop.{key}", f"a finite number in [0, {high:g}]", value)
        if not isinstance(data.get("geometry", True), bool):
            raise _fail(where, "geometry", "true or false", data.get("geometry"))

    def train(self, config: RunOptions, services: TrainServices,
              on_epoch: EpochProgress | None,
              on_batch: BatchProgress | None = None) -> TrainResult:
        from detect.models.histology.loop import train_histology

        if not isinstance(config, HistologyConfig):
            raise TypeError(f"expected a HistologyConfig, got {type(config).__name__}")
        return train_histology(config, services, on_epoch)

    def load_head(self, info: ModelInfo, weights: Path, device: str) -> HistologyHead:
        from detect.models.histology.network import HistologyHead

        return HistologyHead.load(info, weights, device)

    def _not_a_detector(self, info: ModelInfo) -> str:
        return (f"{info.root} is a histology head, not a detector; pass a detector run as "
                f"--weights and this one as --histology")


FAMILIES = (HistologyFamily(),)
