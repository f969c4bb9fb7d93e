"""``detect train --model histology``: train the histology head on tumour crops.

One process, one device (the first GPU of ``--device 0,1``; the head is small). Per epoch:
train on the train split's box crops (augmented, :mod:`detect.models.histology.data`), then
validate on the val split's boxes without augmentation and write ``last.pt``, ``best.pt``
when the epoch is the best so far, and ``metrics.csv`` (:mod:`detect.models.histology.run`).

- Loss: cross-entropy, with ``--class-weighting loss`` (default) weighted by inverse
  letter frequency of the training boxes (:func:`inverse_frequency_weights`); ``sampler``
  draws boxes with replacement, each letter equally often (seeded per epoch); ``none``.
- Optimiser: AdamW (weight decay on conv/linear weights only), cosine decay of the
  learning rate per step.
- Validation: ``val_patient_balanced_accuracy`` = balanced accuracy over patients, a
  patient's call being the argmax of the mean of its crops' probabilities (as ``detect
  predict`` calls a patient); also crop-level accuracy / balanced accuracy and
  ``val_loss`` = class-balanced cross-entropy (mean over letters of the mean per crop).
- Best epoch: highest ``val_patient_balanced_accuracy``, ties to the lower ``val_loss``.
- Determinism: seeded init, augmentation keyed by (seed, epoch, index), order by
  (seed, epoch), deterministic kernels on the CPU: the same seed gives the same weights,
  whatever ``--workers``, and a resumed run ends as an uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset, Sampler  # noqa: E402

from detect.dataset import DatasetInfo, load_dataset  # noqa: E402
from detect.device import deterministic, torch_device  # noqa: E402
from detect.errors import ConfigError  # noqa: E402
from detect.models.checkpoint import read_checkpoint, save_checkpoint  # noqa: E402
from detect.models.histology.config import HistologyConfig  # noqa: E402
from detect.models.histology.crops import CropSpec  # noqa: E402
from detect.models.histology.data import (  # noqa: E402
    LETTERS,
    CropSample,
    balanced_sample_weights,
    crop_samples,
    inverse_frequency_weights,
    letter_counts,
    sample_arrays,
    sample_rng,
)
from detect.models.histology.network import (  # noqa: E402
    HistologyNet,
    check_checkpoint,
    checkpoint_header,
    cosine_lr,
    load_local_weights,
)
from detect.models.histology.run import (  # noqa: E402
    FAMILY,
    METRIC_COLUMNS,
    complete,
    resumed_config,
    start,
)
from detect.models.training import (  # noqa: E402
    EpochProgress,
    TrainResult,
    TrainServices,
    seed_everything,
)
from detect.runs import (  # noqa: E402
    RunFolder,
    write_metrics_csv,
)
from detect.runs.board import EpochBoard  # noqa: E402

#: ``balanced_accuracy(truth letters, predicted letters)``, the evaluator's (TrainServices).
BalancedAccuracy = Callable[[Sequence[str], Sequence[str]], float]

log = logging.getLogger(__name__)
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class CropDataset(Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]):
    """Samples of :mod:`detect.models.histology.data` as tensors (crop, geometry, letter, index)."""

    def __init__(self, samples: Sequence[CropSample], crop: CropSpec, seed: int | None):
        self.samples, self.crop, self.seed, self.epoch = list(samples), crop, seed, 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        rng = None if self.seed is None else sample_rng(self.seed, self.epoch, index)
        crop, geometry = sample_arrays(self.samples[index], self.crop, rng)
        image = torch.from_numpy(crop).permute(2, 0, 1).float().div_(255.0)
        letter = torch.tensor(self.samples[index].letter, dtype=torch.int64)
        return image, torch.from_numpy(geometry), letter, index


class EpochSampler(Sampler[int]):
    """A permutation (``weights`` None) or weighted draws with replacement, seeded by
    (seed, epoch)."""

    def __init__(self, n: int, seed: int, weights: Sequence[float] | None = None) -> None:
        self.n, self.seed, self.epoch = n, seed, 0
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is None:
            return iter(torch.randperm(self.n, generator=generator).tolist())
        drawn = torch.multinomial(self.weights, self.n, replacement=True, generator=generator)
        return iter(drawn.tolist())


@dataclass
class _State:
    """What has been done so far (restored from last.pt on --resume)."""

    epoch: int = 0
    step: int = 0
    best: tuple[float, float] = (-1.0, 0.0)
    best_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)



def _optimizer(net: nn.Module, config: HistologyConfig) -> torch.optim.AdamW:
    decay = [p for p in net.parameters() if p.ndim > 1]
    rest = [p for p in net.parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=config.lr)


def _loader(dataset: CropDataset, batch: int, workers: int, sampler: Sampler[int] | None,
            train: bool) -> DataLoader[Any]:
    return DataLoader(dataset, batch_size=batch, sampler=sampler, shuffle=False,
                      num_workers=workers, drop_last=train and len(dataset) > batch)


def train_one_epoch(net: HistologyNet, optimizer: torch.optim.Optimizer, loader: DataLoader,
                    criterion: nn.Module, device: torch.device, state: _State, steps: int,
                    total: int, peak_lr: float) -> dict[str, float]:
    """One pass of at most ``steps`` batches; returns mean loss, last lr and seconds."""
    net.train()
    started, losses, lr = time.perf_counter(), [], peak_lr
    for done, (crops, geometry, letters, _) in enumerate(loader):
        if done >= steps:
            break
        lr = cosine_lr(state.step, total, peak_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        logits = net(crops.to(device), geometry.to(device))
        loss = criterion(logits, letters.to(device))
        if not torch.isfinite(loss):
            raise ConfigError(f"the training loss became {loss.item()} at step {state.step}; "
                              f"lower the learning rate or check the dataset")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state.step += 1
        losses.append(float(loss.item()))
    return {"train_loss": float(np.mean(losses)) if losses else float("nan"), "lr": lr,
            "train_seconds": time.perf_counter() - started}


@torch.inference_mode()
def validate(net: HistologyNet, loader: DataLoader, samples: Sequence[CropSample],
             device: torch.device, balanced_accuracy: BalancedAccuracy) -> dict[str, float]:
    """Crop- and patient-level metrics on the val boxes (module docstring);
    ``balanced_accuracy(truth, predicted)`` over letters is the evaluator's."""
    net.eval()
    probs = np.zeros((len(samples), len(LETTERS)))
    losses = np.zeros(len(samples))
    for crops, geometry, letters, index in loader:
        logits = net(crops.to(device), geometry.to(device)).float()
        ce = nn.functional.cross_entropy(logits, letters.to(device), reduction="none")
        probs[index.numpy()] = torch.softmax(logits, dim=1).cpu().numpy()
        losses[index.numpy()] = ce.cpu().numpy()
    truth = [LETTERS[s.letter] for s in samples]
    guess = [LETTERS[int(k)] for k in probs.argmax(axis=1)]
    per_letter = [losses[[t == letter for t in truth]].mean() for letter in LETTERS
                  if letter in truth]
    patients = patient_calls(samples, probs)
    p_truth = [t for t, _ in patients.values()]
    p_guess = [g for _, g in patients.values()]
    return {
        "val_loss": float(np.mean(per_letter)),
        "val_accuracy": float(np.mean([t == g for t, g in zip(truth, guess)])),
        "val_balanced_accuracy": balanced_accuracy(truth, guess),
        "val_patient_accuracy": float(np.mean([t == g for t, g in zip(p_truth, p_guess)])),
        "val_patient_balanced_accuracy": balanced_accuracy(p_truth, p_guess),
        "val_patients": float(len(patients)),
    }


def patient_calls(samples: Sequence[CropSample], probs: np.ndarray) -> dict[str, tuple[str, str]]:
    """patient → (true letter: its boxes' commonest, called letter: argmax of the mean of
    its crops' probabilities)."""
    rows: dict[str, list[int]] = {}
    for i, sample in enumerate(samples):
        rows.setdefault(sample.patient_id, []).append(i)
    out = {}
    for patient, idx in sorted(rows.items()):
        letters = [samples[i].letter for i in idx]
        truth = max(set(letters), key=lambda k: (letters.count(k), -k))
        out[patient] = (LETTERS[truth], LETTERS[int(np.argmax(probs[idx].mean(axis=0)))])
    return out


@dataclass
class _Setup:
    config: HistologyConfig
    dataset: DatasetInfo
    train: list[CropSample]
    val: list[CropSample]
    device: torch.device
    services: TrainServices


def train_histology(config: HistologyConfig, services: TrainServices,
                    on_epoch: EpochProgress | None = None) -> TrainResult:
    """Train (or ``resume``) a histology head into ``project/histology/<name>``.

    Raises:
        DetectError: dataset (no boxes in train or val), option or resume problems.
        KeyboardInterrupt: passed on; after an epoch weights/last.pt keeps the last one.
    """
    started = time.monotonic()
    dataset = load_dataset(config.data)
    train, val = crop_samples(dataset, "train"), crop_samples(dataset, "val")
    run = RunFolder.choose(config.project, FAMILY, config.name, config.resume)
    with run.guarded():
        if config.resume:
            config = resumed_config(run, dataset, config)
        setup = _Setup(config, dataset, train, val, torch.device(torch_device(config.device)),
                       services)
        seed_everything(config.seed)
        net = HistologyNet(config.backbone, config.geometry)
        loaded = load_local_weights(net, config.weights) if config.weights is not None else None
        counts = letter_counts(setup.train)
        weights = inverse_frequency_weights(counts)
        start(run, config, dataset, {
            "device_resolved": str(setup.device), "training_boxes": dict(zip(LETTERS, counts)),
            "val_boxes": len(setup.val), "loss_weights": dict(zip(LETTERS, weights))
            if config.class_weighting == "loss" else None, "weights_loaded": loaded})
        with deterministic(config.deterministic, setup.device):
            state = fit(setup, net.to(setup.device), run.path, weights, on_epoch)
        metrics = complete(run, state.history[state.best_epoch - 1])
        return TrainResult(run.path, run.model_json, state.epoch, metrics,
                           time.monotonic() - started)


def fit(setup: _Setup, net: HistologyNet, run_dir: Path, loss_weights: Sequence[float],
        on_epoch: EpochProgress | None) -> _State:
    """The epochs (module docstring); returns what was done."""
    config, device = setup.config, setup.device
    train_set = CropDataset(setup.train, config.crop, config.seed if config.augment else None)
    sampler = EpochSampler(len(train_set), config.seed, balanced_sample_weights(setup.train)
                           if config.class_weighting == "sampler" else None)
    train_loader = _loader(train_set, config.batch, config.workers, sampler, True)
    val_loader = _loader(CropDataset(setup.val, config.crop, None), config.batch,
                         config.workers, None, False)
    steps = min(len(train_loader), config.max_steps or len(train_loader))
    weight = torch.tensor(loss_weights, dtype=torch.float32, device=device)
    criterion = nn.CrossEntropyLoss(weight=weight if config.class_weighting == "loss" else None)
    optimizer = _optimizer(net, config)
    state = _restore(run_dir, net, optimizer, config) if config.resume else _State()
    board = EpochBoard(run_dir, after=state.epoch)
    try:
        for epoch in range(state.epoch + 1, config.epochs + 1):
            train_set.epoch = sampler.epoch = epoch
            began = time.perf_counter()
            stats = train_one_epoch(net, optimizer, train_loader, criterion, device, state,
                                    steps, steps * config.epochs, config.lr)
            row = {"epoch": epoch, **stats, **validate(net, val_loader, setup.val, device,
                                                       setup.services.balanced_accuracy)}
            row["time_s"] = time.perf_counter() - began
            state.epoch = epoch
            _end_epoch(run_dir, net, optimizer, config, state, row)
            board.log(state.history)
            if on_epoch is not None:
                on_epoch(epoch, config.epochs, row)
    finally:
        board.close()
    return state


def _end_epoch(run_dir: Path, net: HistologyNet, optimizer: torch.optim.Optimizer,
               config: HistologyConfig, state: _State, row: dict[str, Any]) -> None:
    state.history.append(row)
    key = (float(row["val_patient_balanced_accuracy"]), -float(row["val_loss"]))
    common = {**checkpoint_header(net, config.crop), "epoch": state.epoch,
              "model": net.state_dict()}
    if key > state.best:
        state.best, state.best_epoch = key, state.epoch
        save_checkpoint(run_dir / "weights" / "best.pt", {**common, "kind": "best", "metrics": row})
    save_checkpoint(run_dir / "weights" / "last.pt", {
        **common, "kind": "last", "epochs": config.epochs, "optimizer": optimizer.state_dict(),
        "step": state.step, "best": list(state.best), "best_epoch": state.best_epoch,
        "history": state.history})
    write_metrics_csv(run_dir / "metrics.csv", state.history, METRIC_COLUMNS)
    log.info("epoch %d/%d: loss %.4f, val patient balanced accuracy %.3f", state.epoch,
             config.epochs, row["train_loss"], row["val_patient_balanced_accuracy"])



def _restore(run_dir: Path, net: HistologyNet, optimizer: torch.optim.Optimizer,
             config: HistologyConfig) -> _State:
    path = run_dir / "weights" / "last.pt"
    data = read_checkpoint(path)
    check_checkpoint(data, path, "last")
    net.load_state_dict(data["model"])
    optimizer.load_state_dict(data["optimizer"])
    best = [float(v) for v in data["best"]]
    state = _State(int(data["epoch"]), int(data["step"]), (best[0], best[1]),
                   int(data["best_epoch"]), [dict(r) for r in data["history"]])
    log.info("resumed after epoch %d of %d", state.epoch, config.epochs)
    return state
