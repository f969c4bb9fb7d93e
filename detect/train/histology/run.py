"""The histology head's run folder (contract 3): choosing it, model.json, resuming.

``runs/histology/<name>/`` holds ``weights/best.pt`` and ``last.pt`` (see
:mod:`detect.models.histology`), ``metrics.csv`` (:data:`METRIC_COLUMNS`, one row per
epoch) and ``model.json``: family ``histology``, classes A, B, E, G, the dataset's channel
recipe (the head crops slices rendered with it), ``imgsz`` = the crop size, ``crop`` (margin
rule), ``backbone``, ``geometry``, dataset path + fingerprint + splits (the leakage guard
reads the train patients there), the boxes per letter it trained on, the loss weights,
the metrics of the best epoch, versions and every argument.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from detect.dataset import DatasetInfo
from detect.errors import RunFolderError
from detect.histology import LETTERS
from detect.models.catalog import HISTOLOGY as FAMILY
from detect.models.crops import CropSpec
from detect.runs import (
    choose_run_dir,
    config_args,
    new_manifest,
    now_iso,
    read_model_json,
    write_model_json,
)
from detect.train.common import mark_resumed, resumable_manifest, saved_options
from detect.train.histology.config import HistologyConfig

METRIC_COLUMNS = (
    "epoch", "lr", "train_loss", "val_loss", "val_accuracy", "val_balanced_accuracy",
    "val_patient_accuracy", "val_patient_balanced_accuracy", "val_patients", "time_s",
)
#: model.json ``metrics``: the best epoch's row, these keys.
BEST_KEYS = ("epoch", "val_patient_balanced_accuracy", "val_patient_accuracy",
             "val_balanced_accuracy", "val_accuracy", "val_loss")


def run_dir_for(config: HistologyConfig) -> Path:
    """A fresh ``project/histology/<name>`` (never overwritten), or the run to resume."""
    return choose_run_dir(config.project, FAMILY, config.name, config.resume)


def resumed_config(run_dir: Path, dataset: DatasetInfo, config: HistologyConfig
                   ) -> HistologyConfig:
    """The original run's options; data, project, device and workers from this command.

    Raises:
        ConfigError: the run is finished, of another family, or of another dataset.
        RunFolderError: its model.json does not describe a histology run.
    """
    saved = saved_options(resumable_manifest(run_dir, dataset, FAMILY), HistologyConfig)
    try:
        saved["crop"] = CropSpec(**saved["crop"])
        return replace(HistologyConfig(**saved), data=config.data, project=config.project,
                       name=run_dir.name, device=config.device, workers=config.workers,
                       resume=True, weights=None)
    except (KeyError, TypeError) as exc:
        raise RunFolderError(f"{run_dir}/model.json: args do not describe a histology run "
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


def start(run_dir: Path, config: HistologyConfig, dataset: DatasetInfo,
          extra: dict[str, Any]) -> None:
    """Create the run folder and write model.json (or mark the resume in it)."""
    (run_dir / "weights").mkdir(parents=True, exist_ok=True)
    if config.resume:
        mark_resumed(run_dir)
    else:
        write_model_json(run_dir, manifest(config, dataset, extra))


def complete(run_dir: Path, best_row: dict[str, Any]) -> dict[str, Any]:
    """Rewrite model.json with the best epoch's metrics and ``status`` complete; returns
    the metrics."""
    data = read_model_json(run_dir).manifest
    metrics = {key: best_row.get(key) for key in BEST_KEYS}
    data.update(status="complete", metrics=metrics, finished=now_iso())
    write_model_json(run_dir, data)
    return metrics
