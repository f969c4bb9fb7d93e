"""The Faster R-CNN run folder (contract 3): choosing it, model.json, resuming, the result.

Everything here runs in the launching process (or on rank 0 under torchrun), before and
after training; the training processes only write checkpoints, metrics.csv and, at the
end, the completed model.json.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from detect.dataset import DatasetInfo, load_dataset
from detect.errors import DatasetError, RunFolderError
from detect.models.catalog import FASTER_RCNN
from detect.runs import (
    choose_run_dir,
    config_args,
    new_manifest,
    now_iso,
    read_model_json,
    write_model_json,
)
from detect.train.common import mark_resumed, resumable_manifest, saved_options
from detect.train.frcnn.config import BASE_LR_PER_16, FasterRCNNConfig
from detect.train.options import TrainResult

FAMILY = FASTER_RCNN
THRESHOLDS = {"conf": 0.25, "iou": 0.5}


@dataclass(frozen=True)
class RunPlan:
    """What every training process needs: the (resolved) config, the run folder, the
    training size, one device per process, and how processes find each other."""

    config: FasterRCNNConfig
    run_dir: Path
    imgsz: int
    devices: tuple[str, ...]
    init_method: str | None

    @property
    def world_size(self) -> int:
        return len(self.devices)

    @property
    def lr(self) -> float:
        """Base LR: the config's, or BASE_LR_PER_16 per 16 images of the total batch."""
        return self.config.lr or BASE_LR_PER_16 * self.config.batch / 16.0


def check_dataset(dataset: DatasetInfo) -> None:
    """Training needs images in train and val (val picks the best epoch).

    Raises:
        DatasetError: a split has no images.
    """
    for split in ("train", "val"):
        if not dataset.load_coco(split).get("images"):
            raise DatasetError(
                f"{dataset.root}: no images in the {split} split; Faster R-CNN training needs "
                f"train and val images (re-run detect convert with a {split} fraction > 0)"
            )


def _run_dir(config: FasterRCNNConfig) -> Path:
    return choose_run_dir(config.project, FAMILY, config.name, config.resume)


def _resumed_config(run_dir: Path, dataset: DatasetInfo, config: FasterRCNNConfig
                    ) -> FasterRCNNConfig:
    """The original run's options (epochs, batch, backbone, seed, ...); the dataset path,
    project, device, workers and world_size come from this command."""
    saved = saved_options(resumable_manifest(run_dir, dataset, FAMILY), FasterRCNNConfig)
    saved.update(data=config.data, project=config.project, name=run_dir.name,
                 device=config.device, workers=config.workers, world_size=config.world_size,
                 resume=True, weights=None)
    try:
        return FasterRCNNConfig(**saved)
    except TypeError as exc:
        raise RunFolderError(f"{run_dir}/model.json: args do not describe a run ({exc})") from None


def manifest(plan: RunPlan, dataset: DatasetInfo) -> dict[str, Any]:
    """model.json at the start of training (``status`` training, metrics null)."""
    config = plan.config
    return new_manifest(
        FAMILY, dataset, backbone=config.backbone, imgsz=plan.imgsz, thresholds=THRESHOLDS,
        args={
            **config_args(config),
            "lr_resolved": plan.lr,
            "processes": plan.world_size,
            "batch_per_process": config.batch // plan.world_size,
            "devices": list(plan.devices),
            "sampling": {"mode": config.class_weighting},
        },
    )


def free_port() -> int:
    """A TCP port that was free a moment ago (for the processes' rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_run(config: FasterRCNNConfig, resolved_device: str) -> RunPlan:
    """Check the data, pick the run folder, write model.json (or mark a resume).

    ``resolved_device`` is ``--device`` with ``auto`` resolved (``cpu``, ``0``, ``0,1``).

    Raises:
        DetectError: dataset, resume or option problems (one line each).
    """
    dataset = load_dataset(config.data)
    check_dataset(dataset)
    run_dir = _run_dir(config)
    if config.resume:
        config = _resumed_config(run_dir, dataset, config)
    if resolved_device == "cpu":
        devices: tuple[str, ...] = ("cpu",) * (config.world_size or 1)
    else:
        devices = tuple(resolved_device.split(","))
    config = replace(config, device=resolved_device if config.device == "auto" else config.device)
    imgsz = config.imgsz or dataset.image_size
    plan = RunPlan(config, run_dir, imgsz, devices,
                   f"tcp://127.0.0.1:{free_port()}" if len(devices) > 1 else None)
    (run_dir / "weights").mkdir(parents=True, exist_ok=True)
    if config.resume:
        mark_resumed(run_dir)
    else:
        write_model_json(run_dir, manifest(plan, dataset))
    return plan


def complete(run_dir: Path, best_epoch: int, best_row: dict[str, Any]) -> None:
    """Rewrite model.json with the best epoch's metrics and ``status`` complete."""
    data = read_model_json(run_dir).manifest
    data.update(
        status="complete",
        metrics={"epoch": best_epoch, "mAP50": best_row.get("mAP50"),
                 "mAP50-95": best_row.get("mAP50-95")},
        finished=now_iso(),
    )
    write_model_json(run_dir, data)


def result(run_dir: Path, epochs_done: int, seconds: float) -> TrainResult:
    """The :class:`TrainResult` of a run folder (read back from model.json)."""
    info = read_model_json(run_dir)
    return TrainResult(run_dir, info.root / "model.json", epochs_done,
                       dict(info.manifest.get("metrics") or {}), seconds)
