"""The histology head's run folder (contract 3): choosing it, model.json, resuming.

``runs/histology/<name>/`` holds ``weights/best.pt`` and ``last.pt`` (see
:mod:`detect.models.histology.network`), ``metrics.csv`` (:data:`METRIC_COLUMNS`, one row per
epoch) and ``model.json``: family ``histology``, classes A, B, E, G, the dataset's channel
recipe (the head crops slices rendered with it), ``imgsz`` = the crop size, ``crop`` (margin
rule), ``backbone``, ``geometry``, dataset path + fingerprint + splits (the leakage guard
reads the train patients there), the boxes per letter it trained on, the loss weights,
the metrics of the best epoch, versions and every argument.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from detect.dataset import DatasetInfo
from detect.errors import RunFolderError
from detect.histology import LETTERS
from detect.models.histology.config import HistologyConfig
from detect.models.histology.crops import CropSpec
from detect.runs import RunFolder, config_args, new_manifest

FAMILY = "histology"

METRIC_COLUMNS = (
    "epoch", "lr", "train_loss", "val_loss", "val_accuracy", "val_balanced_accuracy",
    "val_patient_accuracy", "val_patient_balanced_accuracy", "val_patients", "time_s",
)
#: model.json ``metrics``: the best epoch's row, these keys.
BEST_KEYS = ("epoch", "val_patient_balanced_accuracy", "val_patient_accuracy",
             "val_balanced_accuracy", "val_accuracy", "val_loss")


def resumed_config(run: RunFolder, dataset: DatasetInfo, config: HistologyConfig
                   ) -> HistologyConfig:
    """The original run's options; data, project, device and workers from this command.

    Raises:
        ConfigError: the run is finished, of another family, or of another dataset.
        RunFolderError: its model.json does not describe a histology run.
    """
    saved = run.saved_options(HistologyConfig, run.resumable(dataset))
    try:
        saved["crop"] = CropSpec(**saved["crop"])
        return replace(HistologyConfig(**saved), data=config.data, project=config.project,
                       name=run.path.name, device=config.device, workers=config.workers,
                       resume=True, weights=None)
    except (KeyError, TypeError) as exc:
        raise RunFolderError(f"{run.model_json}: args do not describe a histology run "
                             f"({exc!r})") from None


def manifest(config: HistologyConfig, dataset: DatasetInfo, extra: dict[str, Any]
             ) -> dict[str, Any]:
    """model.json at the start of training (``status`` training, metrics null)."""
    return new_manifest(
        FAMILY, dataset, backbone=config.backbone, classes=list(LETTERS),
        class_mode="histology", imgsz=config.crop.size, thresholds={},
        args={**config_args(config), **extra},
        extra={"geometry": config.geometry, "crop": config.crop.to_dict()},
    )


def start(run: RunFolder, config: HistologyConfig, dataset: DatasetInfo,
          extra: dict[str, Any]) -> None:
    """Create the run folder and write model.json (or mark the resume in it)."""
    if config.resume:
        run.mark_resumed()
    else:
        run.start(manifest(config, dataset, extra))


def complete(run: RunFolder, best_row: dict[str, Any]) -> dict[str, Any]:
    """Rewrite model.json with the best epoch's metrics and ``status`` complete; returns
    the metrics."""
    metrics = {key: best_row.get(key) for key in BEST_KEYS}
    run.complete(metrics)
    return metrics
