"""The Faster R-CNN training loop of one process: data, model, optimiser, resume, and the
per-epoch checkpoints and metrics (rank 0).

Per epoch, rank 0 writes ``best.pt`` when val mAP50 ties or beats the best so far, then
``last.pt`` (with optimizer, scheduler, scaler, RNG states of every rank and the metrics
history, see :mod:`detect.models.faster_rcnn.checkpoint`), then metrics.csv. Resuming
restores all of it and continues with the next epoch; on the CPU a resumed run ends with the
same weights as an uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402
from torch.utils.data import DataLoader, DistributedSampler, Subset  # noqa: E402

from detect.dataset import DatasetInfo, load_dataset  # noqa: E402
from detect.errors import ConfigError, RunFolderError  # noqa: E402
from detect.models.faster_rcnn.checkpoint import (  # noqa: E402
    CHECKPOINT_VERSION,
    METRIC_COLUMNS,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from detect.models.faster_rcnn.config import FasterRCNNConfig  # noqa: E402
from detect.models.faster_rcnn.data import (  # noqa: E402
    BalancedSampler,
    BoxSafeAugment,
    CocoSplit,
    balanced_weights,
    collate,
    worker_init_fn,
)
from detect.models.faster_rcnn.engine import (  # noqa: E402
    LOSS_NAMES,
    PRECISE_BN_IMAGES,
    evaluate,
    gather,
    make_optimizer,
    make_scheduler,
    precise_bn,
    precision_for,
    train_one_epoch,
    world,
)
from detect.models.faster_rcnn.network import CHECKPOINT_FORMAT, build_model, load_pretrained  # noqa: E402
from detect.models.faster_rcnn.run import RunPlan, complete  # noqa: E402
from detect.models.training import BatchProgress, EpochProgress, seed_everything  # noqa: E402
from detect.runs import write_metrics_csv  # noqa: E402
from detect.runs.board import EpochBoard  # noqa: E402

log = logging.getLogger(__name__)



@dataclass
class _Data:
    train: CocoSplit
    sampler: DistributedSampler[Any] | BalancedSampler
    train_loader: DataLoader[Any]
    val: CocoSplit
    val_loader: DataLoader[Any]
    bn_loader: DataLoader[Any]

    def set_epoch(self, epoch: int) -> None:
        self.train.set_epoch(epoch)
        self.sampler.set_epoch(epoch)


def _data(config: FasterRCNNConfig, dataset: DatasetInfo, device: torch.device) -> _Data:
    rank, size = world()
    per = config.batch // size
    train = CocoSplit(dataset, "train", BoxSafeAugment(config.seed))
    sampler: DistributedSampler[Any] | BalancedSampler
    if config.class_weighting == "sampler":
        sampler = BalancedSampler(balanced_weights(train), num_replicas=size, rank=rank,
                                  seed=config.seed)
    else:
        sampler = DistributedSampler(train, num_replicas=size, rank=rank, shuffle=True,
                                     seed=config.seed)
    common: dict[str, Any] = {
        "batch_size": per, "collate_fn": collate, "num_workers": config.workers,
        "worker_init_fn": worker_init_fn, "pin_memory": device.type == "cuda",
    }
    train_loader = DataLoader(train, sampler=sampler, drop_last=len(sampler) > per,
                              generator=torch.Generator().manual_seed(config.seed + rank),
                              **common)
    val = CocoSplit(dataset, "val")
    val_loader = DataLoader(Subset(val, range(rank, len(val), size)), **common)
    plain = CocoSplit(dataset, "train")
    # Its own generator: the global random stream (the RPN and ROI samplers draw from it)
    # stays as it was, so training is the same with or without the re-estimate.
    bn_loader = DataLoader(Subset(plain, _bn_indices(len(plain), rank, size, per)),
                           generator=torch.Generator().manual_seed(config.seed), **common)
    return _Data(train, sampler, train_loader, val, val_loader, bn_loader)


def _bn_indices(count: int, rank: int, size: int, per: int) -> list[int]:
    """This process's share of the images that re-estimate BatchNorm statistics: up to
    PRECISE_BN_IMAGES spread evenly over the split, as many full batches as fit, and the
    same number of images on every process (SyncBatchNorm reduces inside each forward)."""
    total = min(count, PRECISE_BN_IMAGES)
    unit = per * size if total >= per * size else size
    picked = np.linspace(0, count - 1, total // unit * unit).round().astype(int).tolist()
    return picked[rank::size]


@dataclass
class _Trainer:
    """The objects one process trains with, and what has been done so far."""

    model: nn.Module
    wrapped: nn.Module
    optimizer: torch.optim.SGD
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    epoch: int = 0
    best_map50: float = -1.0
    best_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def _trainer(plan: RunPlan, dataset: DatasetInfo, device: torch.device, steps: int) -> _Trainer:
    config = plan.config
    model = build_model(config.backbone, len(dataset.classes) + 1, plan.imgsz)
    checkpoint = load_checkpoint(plan.run_dir / "weights" / "last.pt") if config.resume else None
    if checkpoint is not None:
        _check_fits(checkpoint, plan, dataset)
        model.load_state_dict(checkpoint["model"])
    elif config.weights is not None:
        load_pretrained(model, config.weights)
    model.to(device)
    wrapped: nn.Module = model
    if plan.world_size > 1:
        if device.type == "cuda":
            wrapped = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        wrapped = DistributedDataParallel(
            wrapped, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = make_optimizer(model, plan.lr)
    scheduler = make_scheduler(optimizer, steps, config.epochs)
    precision = precision_for(device, config.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.needs_scaler)
    trainer = _Trainer(model, wrapped, optimizer, scheduler, scaler)
    if checkpoint is not None:
        _restore(trainer, checkpoint, device)
    return trainer


def _check_fits(checkpoint: Mapping[str, Any], plan: RunPlan, dataset: DatasetInfo) -> None:
    if checkpoint.get("backbone") != plan.config.backbone or list(
        checkpoint.get("classes", [])
    ) != dataset.classes:
        raise RunFolderError(
            f"{plan.run_dir}/weights/last.pt is a {checkpoint.get('backbone')} model for classes "
            f"{checkpoint.get('classes')}, but the run says {plan.config.backbone} for "
            f"{dataset.classes}; start a new run"
        )


def _restore(trainer: _Trainer, checkpoint: Mapping[str, Any], device: torch.device) -> None:
    trainer.optimizer.load_state_dict(checkpoint["optimizer"])
    trainer.scheduler.load_state_dict(checkpoint["scheduler"])
    if trainer.scaler.is_enabled() and checkpoint.get("scaler"):
        trainer.scaler.load_state_dict(checkpoint["scaler"])
    trainer.epoch = int(checkpoint["epoch"])
    trainer.best_map50 = float(checkpoint["best_map50"])
    trainer.best_epoch = int(checkpoint["best_epoch"])
    trainer.history = [dict(row) for row in checkpoint["history"]]
    rank, size = world()
    states = checkpoint.get("rng") or []
    if len(states) == size:
        set_rng_state(states[rank], device)
    else:
        log.warning("resumed with %d processes instead of %d: random streams restart", size,
                    len(states))
        seed_everything(trainer.epoch * 1000 + rank)
    log.info("resumed after epoch %d (best mAP50 %.4f)", trainer.epoch, trainer.best_map50)


def fit(plan: RunPlan, device: torch.device, on_epoch: EpochProgress | None,
        on_batch: BatchProgress | None = None) -> int:
    """The epochs of one process: train, validate, and on rank 0 write the run folder;
    returns the last epoch trained (see the module docstring). ``on_batch`` follows the
    steps of each epoch (:data:`detect.models.training.BatchProgress`)."""
    config, (rank, size) = plan.config, world()
    seed_everything(config.seed + rank)
    dataset = load_dataset(config.data)
    data = _data(config, dataset, device)
    steps = min(len(data.train_loader), config.max_steps or len(data.train_loader))
    if steps < 1:
        raise ConfigError(f"--batch {config.batch} leaves no training step on {size} processes")
    trainer = _trainer(plan, dataset, device, steps)
    board = EpochBoard(plan.run_dir, after=trainer.epoch)
    try:
        _epochs(plan, device, (dataset, data), trainer, steps, on_epoch, on_batch, board)
    finally:
        board.close()
    if rank == 0 and trainer.history:
        complete(plan.run_dir, trainer.best_epoch, trainer.history[trainer.best_epoch - 1])
    return trainer.epoch


def _epochs(plan: RunPlan, device: torch.device, inputs: tuple[DatasetInfo, _Data],
            trainer: _Trainer, steps: int, on_epoch: EpochProgress | None,
            on_batch: BatchProgress | None, board: EpochBoard) -> None:
    """Train and validate the remaining epochs; rank 0 writes each one's files."""
    config, (rank, size) = plan.config, world()
    dataset, data = inputs
    precision = precision_for(device, config.amp)
    for epoch in range(trainer.epoch + 1, config.epochs + 1):
        data.set_epoch(epoch)
        on_step = None
        if on_batch is not None:
            def on_step(step: int, total: int, rate: float, epoch: int = epoch) -> None:
                on_batch(epoch, config.epochs, step, total, rate)
        stats = train_one_epoch(trainer.wrapped, trainer.optimizer, trainer.scheduler,
                                data.train_loader, device, epoch, precision=precision,
                                scaler=trainer.scaler, steps=steps, on_step=on_step)
        started = time.perf_counter()
        precise_bn(trainer.model, data.bn_loader, device, precision)
        records = evaluate(trainer.model, data.val, data.val_loader, device, dataset.classes,
                           precision)
        rngs = gather([rng_state(device)])
        trainer.epoch = epoch
        if rank == 0:
            stats["seconds_val"] = time.perf_counter() - started
            row = _end_epoch(plan, dataset, trainer, epoch, stats, records, rngs)
            board.log(trainer.history)
            if on_epoch is not None:
                on_epoch(epoch, config.epochs, row)
        if size > 1:
            dist.barrier()


def _end_epoch(plan: RunPlan, dataset: DatasetInfo, trainer: _Trainer, epoch: int,
               stats: Mapping[str, float], records: list[Any], rngs: list[Any]
               ) -> dict[str, Any]:
    scored = plan.services.score_detections(dataset, "val", records)
    row: dict[str, Any] = {
        "epoch": epoch, "lr": stats["lr"], "loss": stats["loss"],
        **{name: stats[name] for name in LOSS_NAMES},
        "mAP50": float(scored.get("mAP50") or 0.0),
        "mAP50-95": float(scored.get("mAP50-95") or 0.0),
        "time_s": stats["seconds"] + stats["seconds_val"],
        "images_per_s": stats["images"] / max(stats["seconds"], 1e-9),
        "val_images_with_predictions": len({r.image_id for r in records}),
    }
    trainer.history.append(row)
    weights = plan.run_dir / "weights"
    common = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
              "backbone": plan.config.backbone, "classes": dataset.classes,
              "imgsz": plan.imgsz, "epoch": epoch, "model": trainer.model.state_dict()}
    if row["mAP50"] >= trainer.best_map50:
        trainer.best_map50, trainer.best_epoch = row["mAP50"], epoch
        save_checkpoint(weights / "best.pt", {**common, "kind": "best", "metrics": row})
    save_checkpoint(weights / "last.pt", {
        **common, "kind": "last", "epochs": plan.config.epochs,
        "optimizer": trainer.optimizer.state_dict(), "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(), "best_map50": trainer.best_map50,
        "best_epoch": trainer.best_epoch, "history": trainer.history, "world_size": plan.world_size,
        "rng": rngs,
    })
    write_metrics_csv(plan.run_dir / "metrics.csv", trainer.history, METRIC_COLUMNS)
    log.info("epoch %d/%d: loss %.4f, val mAP50 %.4f", epoch, plan.config.epochs, row["loss"],
             row["mAP50"])
    return row
