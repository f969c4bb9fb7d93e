"""``detect train --model yolov8|yolo11|yolo26``: YOLO through ultralytics' public API.

``train_yolo(variant, config)`` validates the dataset, picks the run folder
``project/<family>/<name>`` and runs it through :class:`detect.runs.RunFolder` (never an
existing folder; a failed start leaves nothing), writes a ``data.yaml`` for the run (plus
a balanced train list with ``--class-weighting sampler``) and ``model.json`` with
``"status": "training"``, trains, keeps ``metrics.csv`` current after every epoch, and
rewrites ``model.json`` with the best epoch's metrics and ``"status": "complete"``. Ctrl-C
after an epoch leaves ``weights/last.pt``; ``--resume`` continues it (ultralytics' own
resume).

``--class-weighting`` (see :mod:`detect.models.yolo.config`); ``sampler`` is repeat-factor
sampling (LVIS, Gupta et al. 2019) with threshold = the commonest class's frequency: class
c gets r_c = sqrt(f_max / f_c), where f is the fraction of training images holding c; an
image is listed round(max r_c of its classes) times (at least once) in
``train-balanced.txt``, which the run's data.yaml uses as its train split. Validation is
never resampled.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from detect.dataset import DatasetInfo, load_dataset
from detect.device import resolve_device
from detect.errors import DatasetError, DetectError
from detect.io.atomic import write_text
from detect.models.training import EpochProgress, TrainResult, training_imgsz
from detect.models.yolo.config import LOSS_CLS_PW, YoloConfig, YoloVariant
from detect.runs import RunFolder, best_epoch, config_args, new_manifest, write_metrics_csv
from detect.runs.board import EpochBoard
from detect.torch_check import require_working_torch

if TYPE_CHECKING:
    from detect.models.yolo.train import YoloTrainSpec

#: The balanced train list of ``--class-weighting sampler``, in the run folder.
BALANCED_LIST = "train-balanced.txt"

log = logging.getLogger(__name__)


def _check_dataset(dataset: DatasetInfo) -> None:
    for split in ("train", "val"):
        folder = dataset.root / "images" / split
        if not folder.is_dir() or next(folder.glob("*.png"), None) is None:
            raise DatasetError(
                f"{dataset.root}: no images in images/{split}; training needs train and val "
                f"images (re-run detect convert with a {split} fraction > 0)"
            )


def image_classes(dataset: DatasetInfo, split: str = "train") -> dict[Path, set[int]]:
    """Image path → class indices in its YOLO label file (empty set: no boxes)."""
    out: dict[Path, set[int]] = {}
    for image in sorted((dataset.root / "images" / split).glob("*.png")):
        label = dataset.root / "labels" / split / f"{image.stem}.txt"
        text = label.read_text() if label.is_file() else ""
        out[image] = {int(line.split()[0]) for line in text.splitlines() if line.strip()}
    return out


def repeat_factors(classes_of: Mapping[Path, set[int]]) -> dict[Path, int]:
    """Repeat-factor sampling counts (module docstring): at least 1 per image."""
    frequency = Counter(c for classes in classes_of.values() for c in classes)
    if not frequency:
        return dict.fromkeys(classes_of, 1)
    top = max(frequency.values())
    factor = {c: math.sqrt(top / count) for c, count in frequency.items()}
    return {
        image: max(1, round(max((factor[c] for c in classes), default=1.0)))
        for image, classes in classes_of.items()
    }


def write_run_data(run_dir: Path, dataset: DatasetInfo, weighting: str) -> Path:
    """The run's data.yaml (and train-balanced.txt for ``sampler``); returns its path."""
    sampling = run_sampling(dataset, weighting)
    train_entry: str = "images/train"
    if weighting == "sampler":
        repeats = repeat_factors(image_classes(dataset))
        listing = run_dir / BALANCED_LIST
        lines = [str(image.resolve()) for image, n in repeats.items() for _ in range(n)]
        write_text(listing, "\n".join(lines) + "\n")
        train_entry = str(listing.resolve())
        if len(lines) != sampling["listed"]:
            raise DetectError(f"{dataset.root} changed while the run started; run again")
    content = {
        "path": str(dataset.root.resolve()),
        "train": train_entry,
        "val": "images/val",
        "test": "images/test",
        "names": dict(enumerate(dataset.classes)),
    }
    path = run_dir / "data.yaml"
    write_text(path, "# written by detect train\n" + yaml.safe_dump(content, sort_keys=False))
    return path


def run_sampling(dataset: DatasetInfo, weighting: str) -> dict[str, Any]:
    """How the run samples its training images, for model.json ``args.sampling``."""
    sampling: dict[str, Any] = {"mode": weighting}
    if weighting == "sampler":
        repeats = repeat_factors(image_classes(dataset))
        sampling.update(images=len(repeats), listed=sum(repeats.values()), list=BALANCED_LIST)
    elif weighting == "loss":
        sampling["cls_pw"] = LOSS_CLS_PW
    return sampling


def train_yolo(variant: YoloVariant, config: YoloConfig, thresholds: Mapping[str, float],
               on_epoch: EpochProgress | None = None) -> TrainResult:
    """Train a YOLO detector of ``variant`` into a run folder (module docstring).

    Raises:
        DetectError: dataset or option problems (one line each).
        KeyboardInterrupt: passed on; after an epoch the run folder stays resumable.
    """
    require_working_torch()
    dataset = load_dataset(config.data)
    _check_dataset(dataset)
    run = RunFolder.choose(config.project, variant.name, config.name, config.resume)
    with run.guarded():
        previous = run.resumable(dataset) if config.resume else None
        from detect.models.yolo import train as engine  # checks torch/torchvision on import

        device = resolve_device(config.device)
        if previous is None:  # load everything that can fail before the run folder exists
            model = engine.new_model(variant.name, config.size, config.weights)
            weighting = config.class_weighting
        else:
            model = engine.resumable_model(run.path, variant.name, str(previous.get("size")),
                                           previous["args"].get("ultralytics") or {})
            weighting = previous["args"]["sampling"]["mode"]
        start = time.monotonic()
        board = EpochBoard(run.path, after=len(engine.read_results(run.path)) if previous else 0)
        hook = _epoch_hook(run.path, engine.read_results, on_epoch, board)
        if previous is None:
            spec = _yolo_spec(variant, config, dataset, run.path, device)
            manifest = new_manifest(
                variant.name, dataset, size=config.size, imgsz=spec.imgsz,
                thresholds=thresholds,
                args={**config_args(config), "device_resolved": device,
                      "sampling": run_sampling(dataset, weighting),
                      "ultralytics": spec.train_args()},
            )
            run.start(manifest)
            write_run_data(run.path, dataset, weighting)
            try:
                engine.train_yolo(model, spec, hook)
            finally:
                board.close()
        else:
            run.mark_resumed()
            data_yaml = write_run_data(run.path, dataset, weighting)
            try:
                engine.resume_yolo(model, run.path, data_yaml, device, config.workers, hook)
            finally:
                board.close()
        return _finish(run, engine.read_results(run.path), time.monotonic() - start)


def _yolo_spec(
    variant: YoloVariant, config: YoloConfig, dataset: DatasetInfo, run_dir: Path, device: str
) -> YoloTrainSpec:
    from detect.models.yolo.train import YoloTrainSpec

    return YoloTrainSpec(
        family=variant.name, size=config.size, data_yaml=run_dir / "data.yaml",
        run_dir=run_dir, epochs=config.epochs,
        imgsz=training_imgsz(config.imgsz, dataset.image_size),
        batch=config.batch, device=device, seed=config.seed, workers=config.workers,
        weights=config.weights, cls_pw=LOSS_CLS_PW if config.class_weighting == "loss" else 0.0,
        amp=config.amp, nbs=config.nbs, optimizer=config.optimizer, lr0=config.lr0,
        mosaic=config.mosaic, end2end=variant.end2end,
    )


def _epoch_hook(
    run_dir: Path, read: Callable[[Path], list[dict[str, Any]]], on_epoch: EpochProgress | None,
    board: EpochBoard,
) -> Callable[[int, int], None]:
    def hook(epoch: int, epochs: int) -> None:
        rows = read(run_dir)
        write_metrics_csv(run_dir / "metrics.csv", rows)
        board.log(rows)
        if on_epoch is not None:
            on_epoch(epoch, epochs, rows[-1] if rows else {})

    return hook


def _finish(run: RunFolder, rows: list[dict[str, Any]], seconds: float) -> TrainResult:
    write_metrics_csv(run.path / "metrics.csv", rows)
    for name in ("best", "last"):
        if not (run.path / "weights" / f"{name}.pt").is_file():
            raise DetectError(f"training ended without weights/{name}.pt in {run.path}")
    best = best_epoch(rows)
    metrics = {key: best.get(key) for key in ("epoch", "mAP50", "mAP50-95", "precision", "recall")}
    run.complete(metrics)
    return TrainResult(run.path, run.model_json, int(rows[-1]["epoch"]), metrics, seconds)
