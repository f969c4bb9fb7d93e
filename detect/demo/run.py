"""``detect demo``: the whole chain on a built-in phantom cohort, offline, on the CPU.

synth → convert → train yolov8n briefly → eval on the test split (report.html) →
predict on the test patients' DICOM folders (JSON, VOC XML, overlays) → real CT: the
shipped real model (``weights/real-yolov8n``) on the repository's real sample (one real
patient it never saw), scored against its boxes, with a side-by-side figure at the end of
report.html (:mod:`detect.demo.real`). Each stage is the same library call its own
command makes, so the demo shows exactly what a user gets. Deterministic for a seed
(phantom, split and CPU training are all seeded).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detect.errors import ConfigError
from detect.shipped import RealSample

if TYPE_CHECKING:  # the stages import torch and ultralytics: only when the demo runs
    from detect.dataset import DatasetInfo
    from detect.synth.cohort import SynthSummary
    from detect.train import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class YoloHyperparameters:
    """The YOLO training options the demo sets (``detect train --nbs --optimizer --lr0
    --mosaic``)."""

    step_every_batch: bool = False  # nbs = batch; False: ultralytics' nbs 64
    optimizer: str = "auto"
    lr0: float | None = None
    mosaic: float | None = None


#: The demo's YOLO hyperparameters. 128 training images are 8 batches an epoch, and
#: ultralytics' defaults (an optimizer step per 64 images, AdamW at lr 0.00125 for 4
#: classes, mosaic) needed 60 epochs for test mAP50 0.72. ``short`` steps on every batch,
#: at lr 0.004, without mosaic: test mAP50 0.62 and a higher FROC in 30 epochs, half the
#: time (phantom; tools/benchmarks/RESULTS.md, section demo_recipe). ``ultralytics``: its
#: defaults (the shipped weights/demo-yolov8n-phantom, 60 epochs).
HYPERPARAMETERS = {
    "short": YoloHyperparameters(step_every_batch=True, optimizer="AdamW", lr0=0.004, mosaic=0.0),
    "ultralytics": YoloHyperparameters(),
}

Stage = Callable[[str], None]
Epoch = Callable[[int, int, Any], None]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo run; the defaults finish in a few minutes on 2 CPU cores."""

    out: Path
    patients: int = 40
    slices: int = 48
    size: int = 256
    epochs: int = 30
    batch: int = 16
    hyp: str = "short"  # a key of HYPERPARAMETERS
    seed: int = 0
    device: str = "auto"
    save: tuple[str, ...] = ("json", "voc", "png")
    real: bool = True
    real_sample: Path | None = None  # None: the clone's datasets/lung-pet-ct-dx/sample
    real_weights: Path | None = None  # None: the clone's weights/real-yolov8n

    def __post_init__(self) -> None:
        if self.patients < 8:
            raise ConfigError(f"the demo needs >= 8 patients for 3 splits, got {self.patients}")
        if self.epochs < 1 or self.slices < 8 or self.size < 64:
            raise ConfigError(
                f"demo needs epochs >= 1, slices >= 8, size >= 64; got {self.epochs}, "
                f"{self.slices}, {self.size}"
            )
        if self.hyp not in HYPERPARAMETERS:
            raise ConfigError(f"--hyp must be one of {', '.join(HYPERPARAMETERS)}, "
                              f"got {self.hyp!r}")
        if (self.out / "dataset").exists() or (self.out / "phantom").exists():
            raise ConfigError(f"{self.out} already holds a demo; pass another --out")


@dataclass
class DemoSummary:
    """Where the demo's outputs are, and its headline numbers."""

    out: Path
    report: Path
    predictions: Path
    run_dir: Path
    metrics: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    real: Path | None = None


def make_cohort(config: DemoConfig, out: Path) -> SynthSummary:
    """Stage 1: the demo's phantom cohort."""
    from detect.synth.cohort import SynthConfig, synthesize

    return synthesize(out, SynthConfig(patients=config.patients, slices=config.slices,
                                       size=config.size, seed=config.seed))


def make_dataset(config: DemoConfig, cohort: SynthSummary, out: Path) -> DatasetInfo:
    """Stage 2: the cohort converted and split by patient 0.6 / 0.2 / 0.2."""
    from detect.convert import convert
    from detect.convert.config import ConvertConfig
    from detect.dataset import load_dataset

    convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, out, seed=config.seed,
                          split=(0.6, 0.2, 0.2)))
    return load_dataset(out)


def train_config(config: DemoConfig, data: Path, project: Path) -> TrainConfig:
    """Stage 3's options: yolov8n from its YAML with the ``config.hyp`` hyperparameters."""
    from detect.train import TrainConfig

    hyp = HYPERPARAMETERS[config.hyp]
    return TrainConfig(model="yolov8", data=data, size="n", epochs=config.epochs,
                       batch=config.batch, device=config.device, project=project, name="demo",
                       seed=config.seed, nbs=config.batch if hyp.step_every_batch else None,
                       optimizer=hyp.optimizer, lr0=hyp.lr0, mosaic=hyp.mosaic)


def _test_patient_folders(dicom_root: Path, patients: list[str]) -> list[Path]:
    """The DICOM folders of the given patients (by the TCIA naming of the phantom)."""
    wanted = {f"Lung_Dx-{p}" for p in patients}
    return sorted(p for p in dicom_root.iterdir() if p.name in wanted)


def run_demo(config: DemoConfig, stage: Stage | None = None,
             on_epoch: Epoch | None = None) -> DemoSummary:
    """Run every stage into ``config.out``; returns where to look."""
    from detect.eval import EvalConfig, run_eval
    from detect.predict import PredictConfig, predict, predict_split
    from detect.train import train

    real = _real_inputs(config)  # before any work: a missing sample fails in a second
    steps = 6 if real is not None else 5
    say = stage or (lambda text: log.info(text))
    seconds: dict[str, float] = {}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        seconds[name] = round(time.monotonic() - clock, 1)
        clock = time.monotonic()

    out = config.out
    say(f"1/{steps} synth: {config.patients} phantom patients, {config.slices} slices, "
        f"{config.size} px")
    cohort = make_cohort(config, out / "phantom")
    lap("synth")
    say(f"2/{steps} convert: DICOM + VOC → PNG dataset (COCO + YOLO), split by patient")
    dataset = make_dataset(config, cohort, out / "dataset")
    lap("convert")
    say(f"3/{steps} train: yolov8n from its YAML, {config.epochs} epochs (no download)")
    result = train(train_config(config, dataset.root, out / "runs"), on_epoch=on_epoch)
    lap("train")
    say(f"4/{steps} eval: test split → metrics.json, report.md, report.html")
    evaluation = run_eval(EvalConfig(data=dataset.root, split="test", weights=result.run_dir,
                                     out=out / "eval", device=config.device, seed=config.seed),
                          predict_split=predict_split)
    lap("eval")
    say(f"5/{steps} predict: the test patients' DICOM folders → predictions, VOC XML, overlays")
    sources = _test_patient_folders(cohort.dicom_root, dataset.splits["test"])
    predicted = predict(PredictConfig(sources=tuple(sources), weights=result.run_dir,
                                      out=out / "predict", save=config.save,
                                      device=config.device))
    lap("predict")
    real_result = None
    if real is not None:
        from detect.demo.real import run_real_stage

        say(f"6/{steps} real CT: the shipped real model on a real patient it never saw "
            f"(Lung-PET-CT-Dx A0002) → scored against its boxes, side-by-side figure")
        real_result = run_real_stage(out / "real", sample=real[0], weights=real[1],
                                     device=config.device)
        evaluation.report.append(real_result.blocks)  # the report ends on real CT
        lap("real")
    metrics: dict[str, Any] = {
        "mAP50": evaluation.result.map50, "mAP50-95": evaluation.result.map50_95,
        "AP@0.1": evaluation.result.ap10, "FROC mean": evaluation.result.froc_mean,
        "patient sensitivity": evaluation.result.patient_sensitivity,
        "test patients": len(dataset.splits["test"]), "slices predicted": predicted.slices,
        "detections": predicted.detections,
    }
    if real_result is not None:
        score = real_result.score
        metrics.update({
            "real CT: tumour AP50 (annotated slices)": score.ap50_annotated,
            "real CT: sensitivity at 8 FP/series": score.sensitivity_at(8.0),
            "real CT: patient found": ", ".join(
                f"{p} {'yes' if hit else 'no'}" for p, hit in score.patients_found.items()),
        })
    return DemoSummary(out=out, report=evaluation.files["report_html"],
                       predictions=predicted.out, run_dir=result.run_dir, metrics=metrics,
                       seconds=seconds, real=None if real_result is None else real_result.out)


def _real_inputs(config: DemoConfig) -> tuple[RealSample, Path] | None:
    """The real sample and model of the last stage, or None with ``real=False``.

    Raises:
        ShippedFileMissing: either is not found (the message says how to pass them).
    """
    if not config.real:
        return None
    from detect.shipped import real_sample, real_weights

    return real_sample(config.real_sample), real_weights(config.real_weights)
