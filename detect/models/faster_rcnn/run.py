"""The Faster R-CNN run folder (contract 3): choosing it, model.json, resuming, the result.

Everything here runs in the launching process (or on rank 0 under torchrun), before and
after training; the training processes only write checkpoints, metrics.csv and, at the
end, the completed model.json.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from detect.dataset import DatasetInfo, load_dataset
from detect.errors import DatasetError, RunFolderError
from detect.models.faster_rcnn.config import BASE_LR_PER_16, FasterRCNNConfig
from detect.models.training import TrainResult, TrainServices, training_imgsz
from detect.runs import RunFolder, config_args, new_manifest, read_model_json

FAMILY = "fasterrcnn"


@dataclass(frozen=True)
class RunPlan:
    """What every training process needs: the (resolved) config, the run folder, the
    training size, one device per process, how processes find each other, and the scoring
    of validation predictions."""

    config: FasterRCNNConfig
    run_dir: Path
    imgsz: int
    devices: tuple[str, ...]
    init_method: str | None
    services: TrainServices

    @property
    def world_size(self) -> int:
        return len(self.devices)

    @property
    def lr(self) -> float:
        """Base LR: the config's, or the backbone's BASE_LR_PER_16 per 16 images of the
        total batch."""
        return self.config.lr or BASE_LR_PER_16[self.config.backbone] * self.config.batch / 16.0


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


def _resumed_config(run: RunFolder, dataset: DatasetInfo, config: FasterRCNNConfig
                    ) -> FasterRCNNConfig:
    """The original run's options (epochs, batch, backbone, seed, ...); the dataset path,
    project, device, workers and world_size come from this command."""
    saved = run.saved_options(FasterRCNNConfig, run.resumable(dataset))
    saved.update(data=config.data, project=config.project, name=run.path.name,
                 device=config.device, workers=config.workers, world_size=config.world_size,
                 resume=True, weights=None)
    try:
        return FasterRCNNConfig(**saved)
    except TypeError as exc:
        raise RunFolderError(f"{run.model_json}: args do not describe a run ({exc})") from None


def manifest(plan: RunPlan, dataset: DatasetInfo, thresholds: Mapping[str, float]
             ) -> dict[str, Any]:
    """model.json at the start of training (``status`` training, metrics null)."""
    config = plan.config
    return new_manifest(
        FAMILY, dataset, backbone=config.backbone, imgsz=plan.imgsz, thresholds=thresholds,
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


def prepare_run(run: RunFolder, config: FasterRCNNConfig, resolved_device: str,
                services: TrainServices, thresholds: Mapping[str, float]) -> RunPlan:
    """Check the data, write model.json into the run folder (or mark a resume).

    ``resolved_device`` is ``--device`` with ``auto`` resolved (``cpu``, ``0``, ``0,1``).

    Raises:
        DetectError: dataset, resume or option problems (one line each).
    """
    dataset = load_dataset(config.data)
    check_dataset(dataset)
    if config.resume:
        config = _resumed_config(run, dataset, config)
    if resolved_device == "cpu":
        devices: tuple[str, ...] = ("cpu",) * (config.world_size or 1)
    else:
        devices = tuple(resolved_device.split(","))
    config = replace(config, device=resolved_device if config.device == "auto" else config.device)
    plan = RunPlan(config, run.path, training_imgsz(config.imgsz, dataset.image_size), devices,
                   f"tcp://127.0.0.1:{free_port()}" if len(devices) > 1 else None, services)
    if config.resume:
        run.mark_resumed()
    else:
        run.start(manifest(plan, dataset, thresholds))
    return plan


def result(run_dir: Path, epochs_done: int, seconds: float) -> TrainResult:
    """The :class:`TrainResult` of a run folder (read back from model.json)."""
    info = read_model_json(run_dir)
    return TrainResult(run_dir, info.root / "model.json", epochs_done,
                       dict(info.manifest.get("metrics") or {}), seconds)


def complete(run_dir: Path, best_epoch: int, best_row: Mapping[str, Any]) -> None:
    """Rewrite model.json with the best epoch's metrics and ``status`` complete."""
    RunFolder(run_dir, FAMILY, resume=False).complete(
        {"epoch": best_epoch, "mAP50": best_row.get("mAP50"),
         "mAP50-95": best_row.get("mAP50-95")})
