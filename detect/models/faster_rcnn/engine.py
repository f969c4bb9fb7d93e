"""Faster R-CNN engine: ``train_one_epoch`` and ``evaluate``, the optimiser and LR schedule,
mixed precision, and the few torch.distributed helpers they need.

Optimiser: SGD, momentum 0.9, weight decay 1e-4 (not on norm layers and biases), base LR
``frcnn_config.BASE_LR_PER_16`` (resnet50 0.04, mobilenet 0.08) per 16 images, scaled
linearly with the total batch. Every published Faster R-CNN recipe (Detectron2,
torchvision's references, MMDetection) is tuned on SGD; with BatchNorm, warmup and
gradient clipping it is stable from scratch, and it uses less memory than AdamW (one
buffer per weight, not two), which matters on a modest GPU.

Schedule, per iteration: linear warmup from 0.1 % of the base LR over the first
``min(1000, first epoch)`` iterations, then cosine decay to 1 % of the base LR at the last
iteration. Gradients are clipped to a global L2 norm of 10 (after unscaling under AMP).

BatchNorm statistics are recomputed before every validation (:func:`precise_bn`): the
running averages BatchNorm keeps during training (an exponential average with momentum
0.1 over batches seen with *earlier* weights) lag far behind a network that trains from
scratch for a few hundred iterations, and in eval mode those stale averages are what
normalises every feature. Measured on the phantom of ``tests/train/test_frcnn_learns.py``
(mobilenet, 256 px, 49 training slices, epoch 10 of 20): with the running averages the
RPN's 300 proposals held 0 of 13 val tumours at IoU 0.5 (val mAP50 0.000); the same
weights with statistics recomputed over the training slices held 5 of 13 and detected 4.
Running variances were up to 16x the recomputed ones in the last blocks. This is the
"PreciseBN" of Wu & Johnson, "Rethinking 'Batch' in BatchNorm" (2021), as in fvcore and
Detectron2: the statistics become the average of per-batch statistics over up to
:data:`PRECISE_BN_IMAGES` un-augmented training images (spread evenly over the split),
computed with the current weights; training itself is unchanged (it normalises with batch
statistics). The recomputed statistics are saved in ``best.pt`` and ``last.pt``, so
``detect predict`` sees what validation saw.

Mixed precision (CUDA only; CPU trains in fp32): ``fp16`` autocast with a GradScaler, or
``bf16`` autocast without one. A non-finite loss (averaged over processes, so every rank
sees the same value) stops training with :class:`NonFiniteLoss`.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch import nn  # noqa: E402
from torch.optim.lr_scheduler import LambdaLR  # noqa: E402

from detect.errors import DetectError  # noqa: E402
from detect.models.faster_rcnn.data import CocoSplit, Target  # noqa: E402
from detect.predictions import Prediction  # noqa: E402

log = logging.getLogger(__name__)

MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
WARMUP_ITERS = 1000
WARMUP_FACTOR = 0.001
FINAL_LR_FACTOR = 0.01
CLIP_NORM = 10.0
#: Training images (un-augmented, spread over the split) whose batch statistics replace
#: BatchNorm's running averages before each validation; 0 keeps the running averages.
PRECISE_BN_IMAGES = 256
LOSS_NAMES = ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg")
Batch = tuple[list[torch.Tensor], list[Target]]


class NonFiniteLoss(DetectError):
    """Training produced a NaN or infinite loss."""


@dataclass(frozen=True)
class Precision:
    """Autocast settings: ``dtype`` None means fp32 (CPU, or ``--amp off``)."""

    device_type: str
    dtype: torch.dtype | None

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16


def precision_for(device: torch.device, amp: str) -> Precision:
    """``--amp auto|bf16|fp16|off`` on ``device``: auto is fp16 + GradScaler on CUDA (the
    torchvision reference recipe), nothing on CPU."""
    if device.type != "cuda" or amp == "off":
        return Precision(device.type, None)
    return Precision("cuda", torch.bfloat16 if amp == "bf16" else torch.float16)


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.SGD:
    """SGD with weight decay on weights only (module docstring)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": WEIGHT_DECAY},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.SGD(groups, lr=lr, momentum=MOMENTUM)


def warmup_cosine(total_iters: int, warmup_iters: int) -> Callable[[int], float]:
    """LR factor of iteration ``step`` (0-based): linear warmup, then cosine to 1 %."""

    def factor(step: int) -> float:
        if step < warmup_iters:
            alpha = step / warmup_iters
            return WARMUP_FACTOR * (1.0 - alpha) + alpha
        span = max(1, total_iters - warmup_iters)
        progress = min(1.0, (step - warmup_iters) / span)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return FINAL_LR_FACTOR + (1.0 - FINAL_LR_FACTOR) * cosine

    return factor


def make_scheduler(
    optimizer: torch.optim.Optimizer, iters_per_epoch: int, epochs: int
) -> LambdaLR:
    """Per-iteration warmup + cosine over ``epochs * iters_per_epoch`` iterations."""
    warmup = min(WARMUP_ITERS, max(1, iters_per_epoch - 1))
    return LambdaLR(optimizer, warmup_cosine(iters_per_epoch * epochs, warmup))


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without torch.distributed."""
    return (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)


def mean_over_ranks(values: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Average scalar tensors over all processes (one all_reduce)."""
    names = sorted(values)
    stacked = torch.stack([values[n].detach().float() for n in names])
    if is_distributed():
        dist.all_reduce(stacked)
        stacked /= dist.get_world_size()
    return dict(zip(names, stacked.tolist()))


def gather(items: list[Any]) -> list[Any]:
    """Concatenate a list from every process, in rank order (all_gather_object)."""
    if not is_distributed():
        return items
    parts: list[list[Any] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in (part or [])]


def _to_device(batch: Batch, device: torch.device) -> Batch:
    images, targets = batch
    return (
        [image.to(device, non_blocking=True) for image in images],
        [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets],
    )


def _check_finite(losses: Mapping[str, float], epoch: int, step: int, steps: int) -> None:
    if all(math.isfinite(v) for v in losses.values()):
        return
    shown = ", ".join(f"{k}={v:.4g}" for k, v in losses.items())
    raise NonFiniteLoss(
        f"training diverged at epoch {epoch}, iteration {step}/{steps}: non-finite loss "
        f"({shown}); lower the learning rate or check the data for broken boxes; "
        f"weights/last.pt holds the last finished epoch"
    )


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: LambdaLR,
    loader: Iterable[Batch],
    device: torch.device,
    epoch: int,
    *,
    precision: Precision,
    scaler: torch.amp.GradScaler,
    steps: int,
    on_step: Callable[[int, int, float], None] | None = None,
) -> dict[str, float]:
    """One pass over ``steps`` batches; returns mean losses, last lr, images, seconds.
    ``on_step(step, steps, images_per_s)`` after each step (images of every process).

    Raises:
        NonFiniteLoss: a loss is NaN or infinite (names epoch, iteration and losses).
    """
    model.train()
    sums: dict[str, float] = defaultdict(float)
    seen, done, start = 0, 0, time.perf_counter()
    for step, batch in enumerate(loader, 1):
        if step > steps:
            break
        images, targets = _to_device(batch, device)
        with torch.autocast(precision.device_type, precision.dtype, enabled=precision.enabled):
            loss_dict = model(images, targets)
        loss = sum(loss_dict.values(), torch.zeros((), device=device))
        reduced = mean_over_ranks(loss_dict)
        _check_finite(reduced, epoch, step, steps)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        for name, value in reduced.items():
            sums[name] += value
        seen, done = seen + len(images), step
        if on_step is not None:
            on_step(step, steps, seen * world()[1] / max(time.perf_counter() - start, 1e-9))
    counts = mean_over_ranks({"images": torch.tensor(float(seen))})
    out = {name: sums[name] / max(done, 1) for name in LOSS_NAMES}
    out["loss"] = sum(out.values())
    out.update(lr=optimizer.param_groups[0]["lr"], steps=done,
               images=counts["images"] * world()[1], seconds=time.perf_counter() - start)
    return out


def _norm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def precise_bn(
    model: nn.Module, loader: Iterable[Batch], device: torch.device, precision: Precision
) -> int:
    """Replace every BatchNorm layer's running mean and variance by the average of its batch
    statistics over ``loader``, with the current weights (module docstring); returns the
    number of batches seen. Only the backbone runs when the heads have no BatchNorm
    (mobilenet); otherwise the whole inference path does (resnet50_fpn_v2's box head), so
    the box head's statistics come from test-time proposals. Every process must see the
    same number of batches (SyncBatchNorm reduces inside the forward); with plain
    BatchNorm the estimates are averaged over processes afterwards.
    """
    norms = _norm_layers(model)
    if not norms:
        return 0
    heads = [getattr(model, name) for name in ("rpn", "roi_heads") if hasattr(model, name)]
    backbone_only = hasattr(model, "backbone") and not any(_norm_layers(h) for h in heads)
    momenta = [norm.momentum for norm in norms]
    was_training = model.training
    batches = 0
    try:
        for batch in loader:
            if batches == 0:  # reset only when there is a batch to estimate from
                model.eval()
                for norm in norms:
                    norm.reset_running_stats()
                    norm.momentum = None  # cumulative average of the batches' statistics
                    norm.train()
            images, _ = _to_device(batch, device)
            with torch.autocast(precision.device_type, precision.dtype,
                                enabled=precision.enabled):
                if backbone_only:
                    net: Any = model  # a torchvision GeneralizedRCNN
                    net.backbone(net.transform(images)[0].tensors)
                else:
                    model(images)
            batches += 1
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
            norm.eval()
        model.train(was_training)
    if batches and is_distributed():
        for norm in norms:
            for buffer in (norm.running_mean, norm.running_var):
                if buffer is not None:
                    dist.all_reduce(buffer)
                    buffer /= dist.get_world_size()
    return batches


def records_of(
    output: Mapping[str, torch.Tensor], info: Mapping[str, Any], classes: Sequence[str]
) -> list[Prediction]:
    """Contract-4 records of one model output on one converted image."""
    boxes = output["boxes"].detach().float().cpu().tolist()
    scores = output["scores"].detach().float().cpu().tolist()
    labels = output["labels"].detach().cpu().tolist()
    return [
        Prediction(
            sop_instance_uid=str(info.get("sop_instance_uid") or ""),
            series_instance_uid=str(info.get("series_instance_uid") or ""),
            patient_id=str(info.get("patient_id") or ""),
            xyxy=(box[0], box[1], box[2], box[3]),
            score=min(1.0, max(0.0, score)),
            label=classes[label - 1],
            category_id=int(label),
            image_id=int(info["id"]),
        )
        for box, score, label in zip(boxes, scores, labels)
    ]


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: CocoSplit,
    loader: Iterable[Batch],
    device: torch.device,
    classes: Sequence[str],
    precision: Precision,
) -> list[Prediction]:
    """Predict every image this process's ``loader`` yields; returns the records of all
    processes (gathered, in rank order). Scoring is ``detect.eval``'s job."""
    model.eval()
    by_id = {int(info["id"]): info for info in split.images}
    records: list[Prediction] = []
    for batch in loader:
        images, targets = _to_device(batch, device)
        with torch.autocast(precision.device_type, precision.dtype, enabled=precision.enabled):
            outputs = model(images)
        for target, output in zip(targets, outputs):
            records.extend(records_of(output, by_id[int(target["image_id"])], classes))
    return gather(records)
