"""``detect train --model yolov8|yolo11``: YOLO through ultralytics' public API.

``train_yolo(config)`` validates the dataset, picks the run folder ``project/<model>/<name>``
(an existing name is never overwritten: ``name-2``, ``name-3``... like ultralytics),
writes a ``data.yaml`` for the run (plus a balanced train list with ``--class-weighting
sampler``), writes ``model.json`` with ``"status": "training"``, trains, keeps
``metrics.csv`` current after every epoch, and rewrites ``model.json`` with the best
epoch's metrics and ``"status": "complete"``. Ctrl-C leaves ``weights/last.pt``; ``--resume``
continues it (ultralytics' own resume).

Class imbalance (Lung-PET-CT-Dx: E has 5 of 355 patients), ``--class-weighting``:

- ``none``: plain training.
- ``loss``: ultralytics' ``cls_pw=0.5``: classification loss weights proportional to
  (1 / class frequency) ** 0.5, normalised to mean 1.
- ``sampler``: repeat-factor sampling (LVIS, Gupta et al. 2019) with threshold = the
  commonest class's frequency: class c gets r_c = sqrt(f_max / f_c), where f is the
  fraction of training images holding c; an image is listed round(max r_c of its
  classes) times (at least once) in ``train-balanced.txt``, which the run's data.yaml
  uses as its train split. Validation is never resampled.
- ``auto`` (default): ``none``.

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
from detect.runs import (
    best_epoch,
    choose_run_dir,
    config_args,
    new_manifest,
    now_iso,
    write_metrics_csv,
    write_model_json,
)
from detect.torch_check import require_working_torch
from detect.train.common import mark_resumed, resumable_manifest
from detect.train.options import LOSS_CLS_PW, EpochProgress, TrainConfig, TrainResult

if TYPE_CHECKING:
    from detect.models.yolo import YoloTrainSpec

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


def write_run_data(run_dir: Path, dataset: DatasetInfo, weighting: str) -> tuple[Path, dict]:
    """The run's data.yaml (and train-balanced.txt for ``sampler``); returns its path and
    a description of the sampling for model.json."""
    train_entry: str = "images/train"
    sampling: dict[str, Any] = {"mode": weighting}
    if weighting == "sampler":
        repeats = repeat_factors(image_classes(dataset))
        listing = run_dir / "train-balanced.txt"
        lines = [str(image.resolve()) for image, n in repeats.items() for _ in range(n)]
        listing.write_text("\n".join(lines) + "\n")
        train_entry = str(listing.resolve())
        sampling.update(images=len(repeats), listed=len(lines), list=listing.name)
    elif weighting == "loss":
        sampling["cls_pw"] = LOSS_CLS_PW
    content = {
        "path": str(dataset.root.resolve()),
        "train": train_entry,
        "val": "images/val",
        "test": "images/test",
        "names": dict(enumerate(dataset.classes)),
    }
    path = run_dir / "data.yaml"
    path.write_text("# written by detect train\n" + yaml.safe_dump(content, sort_keys=False))
    return path, sampling


def _run_dir(config: TrainConfig) -> Path:
    return choose_run_dir(config.project, config.model, config.name, config.resume)


def train_yolo(config: TrainConfig, on_epoch: EpochProgress | None = None) -> TrainResult:
    """Train a YOLO detector (yolov8, yolo11) into a run folder (module docstring).

    Raises:
        DetectError: dataset or option problems (one line each).
        KeyboardInterrupt: passed on; the run folder stays resumable.
    """
    require_working_torch()
    dataset = load_dataset(config.data)
    _check_dataset(dataset)
    run_dir = _run_dir(config)
    previous = resumable_manifest(run_dir, dataset, config.model) if config.resume else None
    from detect.models import yolo  # checks torch/torchvision on import

    device = resolve_device(config.device)
    if previous is None:  # load everything that can fail before the run folder exists
        model = yolo.new_model(config.model, config.size, config.weights)
    else:
        model = yolo.resumable_model(run_dir, config.model, str(previous.get("size")),
                                     previous["args"].get("ultralytics") or {})
    run_dir.mkdir(parents=True, exist_ok=True)
    weighting = config.class_weighting if previous is None else previous["args"]["sampling"]["mode"]
    data_yaml, sampling = write_run_data(run_dir, dataset, weighting)
    start = time.monotonic()
    hook = _epoch_hook(run_dir, yolo.read_results, on_epoch)
    if previous is None:
        spec = _yolo_spec(config, dataset, run_dir, data_yaml, device)
        manifest = new_manifest(
            config.model, dataset, size=config.size, imgsz=spec.imgsz,
            thresholds={"conf": 0.25, "iou": 0.7},
            args={**config_args(config), "device_resolved": device, "sampling": sampling,
                  "ultralytics": spec.train_args()},
        )
        write_model_json(run_dir, manifest)
        yolo.train_yolo(model, spec, hook)
    else:
        manifest = mark_resumed(run_dir)
        yolo.resume_yolo(model, run_dir, data_yaml, device, config.workers, hook)
    return _finish(run_dir, manifest, yolo.read_results(run_dir), time.monotonic() - start)


def default_imgsz(dataset: DatasetInfo) -> int:
    """The dataset's image size in px, rounded up to the stride (32) ultralytics needs."""
    return max(32, math.ceil(dataset.image_size / 32) * 32)


def _yolo_spec(
    config: TrainConfig, dataset: DatasetInfo, run_dir: Path, data_yaml: Path, device: str
) -> YoloTrainSpec:
    from detect.models.yolo import YoloTrainSpec

    return YoloTrainSpec(
        family=config.model, size=config.size, data_yaml=data_yaml, run_dir=run_dir,
        epochs=config.epochs, imgsz=config.imgsz or default_imgsz(dataset), batch=config.batch,
        device=device, seed=config.seed, workers=config.workers, weights=config.weights,
        cls_pw=LOSS_CLS_PW if config.class_weighting == "loss" else 0.0, amp=config.amp,
        nbs=config.nbs, optimizer=config.optimizer, lr0=config.lr0, mosaic=config.mosaic,
    )


def _epoch_hook(
    run_dir: Path, read: Callable[[Path], list[dict[str, Any]]], on_epoch: EpochProgress | None
) -> Callable[[int, int], None]:
    def hook(epoch: int, epochs: int) -> None:
        rows = read(run_dir)
        write_metrics_csv(run_dir / "metrics.csv", rows)
        if on_epoch is not None:
            on_epoch(epoch, epochs, rows[-1] if rows else {})

    return hook


def _finish(
    run_dir: Path, manifest: dict[str, Any], rows: list[dict[str, Any]], seconds: float
) -> TrainResult:
    write_metrics_csv(run_dir / "metrics.csv", rows)
    best = best_epoch(rows)
    for name in ("best", "last"):
        if not (run_dir / manifest["weights"][name]).is_file():
            raise DetectError(f"training ended without {manifest['weights'][name]} in {run_dir}")
    metrics = {key: best.get(key) for key in ("epoch", "mAP50", "mAP50-95", "precision", "recall")}
    manifest = {**manifest, "status": "complete", "metrics": metrics, "finished": now_iso()}
    path = write_model_json(run_dir, manifest)
    log.info("run complete: %s (best epoch %s)", run_dir, metrics["epoch"])
    return TrainResult(run_dir, path, int(rows[-1]["epoch"]), metrics, seconds)
