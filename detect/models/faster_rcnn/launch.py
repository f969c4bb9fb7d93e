"""``detect train --model fasterrcnn``: the entry point and its processes.

One process per device. ``--device 0,1`` spawns one process per GPU
(``torch.multiprocessing.spawn``, NCCL); under ``torchrun`` (``WORLD_SIZE`` and
``LOCAL_RANK`` set; e.g. ``torchrun --nproc_per_node 2 -m detect.cli train --model
fasterrcnn --data D --device 0,1``) each launched process trains on GPU ``LOCAL_RANK``
and rank 0 picks the run folder. ``FasterRCNNConfig(device="cpu", world_size=N)`` runs N
CPU processes on gloo (how the tests cover this path). Each process sees
``batch / processes`` images per step (DistributedSampler, or the balanced sampler sharded
by rank); models are wrapped in DistributedDataParallel (SyncBatchNorm on GPUs).
Validation predictions of all ranks are gathered on rank 0, which scores them with
:func:`detect.eval.evaluate_predictions` and alone writes the run folder. The loop
itself is :func:`detect.models.faster_rcnn.loop.fit`.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402  (after the check, so a broken pair fails with one line)
import torch.distributed as dist  # noqa: E402

from detect.device import (  # noqa: E402
    default_workers,
    deterministic,
    resolve_device,
)
from detect.errors import DetectError  # noqa: E402
from detect.models.faster_rcnn.config import FasterRCNNConfig  # noqa: E402
from detect.models.faster_rcnn.loop import fit  # noqa: E402
from detect.models.faster_rcnn.run import FAMILY, RunPlan, prepare_run, result  # noqa: E402
from detect.models.training import (  # noqa: E402
    BatchProgress,
    EpochProgress,
    TrainResult,
    TrainServices,
)
from detect.runs import RunFolder  # noqa: E402

log = logging.getLogger(__name__)


def train_fasterrcnn(
    config: FasterRCNNConfig, services: TrainServices, on_epoch: EpochProgress | None,
    thresholds: Mapping[str, float], on_batch: BatchProgress | None = None,
) -> TrainResult:
    """Train (or ``resume``) a Faster R-CNN into ``project/fasterrcnn/<name>``.

    ``on_epoch(epoch, epochs, row)`` is called after each epoch's files are written (with
    several spawned processes: as this process sees rank 0's metrics.csv grow; under
    torchrun: on rank 0 only); ``on_batch(epoch, epochs, step, steps, images_per_s)``
    after each training step, in one process or on torchrun's rank 0 (spawned processes
    cannot call back into this one).

    Raises:
        DetectError: dataset, option, resume or divergence problems (one line each).
        KeyboardInterrupt: passed on; weights/last.pt keeps the last finished epoch.
    """
    if _under_torchrun():
        return _torchrun_main(config, services, on_epoch, thresholds, on_batch)
    start = time.monotonic()
    run = RunFolder.choose(config.project, FAMILY, config.name, config.resume)
    with run.guarded():
        plan = prepare_run(run, config, resolve_device(config.device), services, thresholds)
        if plan.world_size == 1:
            epochs = run_process(0, plan, on_epoch, on_batch)
        else:
            _spawn(plan, on_epoch)
            epochs = plan.config.epochs
        return result(plan.run_dir, epochs, time.monotonic() - start)


def _under_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ


def _spawn_entry(rank: int, plan: RunPlan, errors: Any) -> None:
    try:
        run_process(rank, plan, None)
    except DetectError as exc:
        errors.put(str(exc))
        raise


def _spawn(plan: RunPlan, on_epoch: EpochProgress | None) -> None:
    """One process per device; ``on_epoch`` follows rank 0's metrics.csv from here."""
    import torch.multiprocessing as mp

    errors = mp.get_context("spawn").SimpleQueue()
    context = mp.spawn(_spawn_entry, args=(plan, errors), nprocs=plan.world_size, join=False)
    reported = _already_done(plan)
    try:
        while not context.join(timeout=2.0):
            reported = _report_rows(plan, reported, on_epoch)
        _report_rows(plan, reported, on_epoch)
    except (mp.ProcessRaisedException, mp.ProcessExitedException):
        if not errors.empty():
            raise DetectError(errors.get()) from None
        raise
    except BaseException:  # Ctrl-C or a failing callback: stop the training processes
        for process in context.processes:
            if process.is_alive():
                process.terminate()
        raise


def _read_rows(plan: RunPlan) -> list[dict[str, Any]]:
    path = plan.run_dir / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v}
            for row in rows]


def _already_done(plan: RunPlan) -> int:
    return len(_read_rows(plan)) if plan.config.resume else 0


def _report_rows(plan: RunPlan, reported: int, on_epoch: EpochProgress | None) -> int:
    rows = _read_rows(plan)
    for row in rows[reported:]:
        if on_epoch is not None:
            on_epoch(int(row["epoch"]), plan.config.epochs, row)
    return max(reported, len(rows))


def _torchrun_main(config: FasterRCNNConfig, services: TrainServices,
                   on_epoch: EpochProgress | None, thresholds: Mapping[str, float],
                   on_batch: BatchProgress | None) -> TrainResult:
    start, local = time.monotonic(), int(os.environ["LOCAL_RANK"])
    cuda = torch.cuda.is_available() and config.device != "cpu"
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", init_method="env://")
    try:
        size = dist.get_world_size()
        box: list[Any] = [None]
        if dist.get_rank() == 0:
            resolved = "cpu" if not cuda else ",".join(str(i) for i in range(size))
            processes = None if cuda else size
            config = replace(config, device=resolved, world_size=processes)
            run = RunFolder.choose(config.project, FAMILY, config.name, config.resume)
            box[0] = prepare_run(run, config, resolved, services, thresholds)
        dist.broadcast_object_list(box, src=0)
        plan = replace(box[0], devices=(str(device),) * size, init_method=None)
        with deterministic(plan.config.deterministic, device):
            first = dist.get_rank() == 0
            epochs = fit(plan, device, on_epoch if first else None,
                         on_batch if first else None)
        dist.barrier()
        return result(plan.run_dir, epochs, time.monotonic() - start)
    finally:
        dist.destroy_process_group()


def run_process(rank: int, plan: RunPlan, on_epoch: EpochProgress | None,
                on_batch: BatchProgress | None = None) -> int:
    """Train as process ``rank`` of the plan (joins the process group when there are
    several); returns the last epoch trained."""
    spec = plan.devices[rank]
    device = torch.device("cpu") if spec == "cpu" else torch.device("cuda", int(spec))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    distributed = plan.world_size > 1
    if distributed:
        if device.type == "cpu":
            torch.set_num_threads(max(1, default_workers() // plan.world_size))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                init_method=plan.init_method, rank=rank,
                                world_size=plan.world_size)
    try:
        with deterministic(plan.config.deterministic, device):
            return fit(plan, device, on_epoch, on_batch)
    finally:
        if distributed:
            dist.destroy_process_group()


