"""``detect demo``: the whole chain on a built-in phantom cohort, offline, on the CPU.

synth → convert → train yolov8n briefly → eval on the test split (report.html) →
predict on the test patients' DICOM folders (JSON, VOC XML, overlays). Each stage is the
same library call its own command makes, so the demo shows exactly what a user gets.
Deterministic for a seed (phantom, split and CPU training are all seeded).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detect.errors import ConfigError

log = logging.getLogger(__name__)
Stage = Callable[[str], None]
Epoch = Callable[[int, int, Any], None]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo run; the defaults finish in a few minutes on 2 CPU cores."""

    out: Path
    patients: int = 40
    slices: int = 48
    size: int = 256
    epochs: int = 60
    batch: int = 16
    seed: int = 0
    device: str = "auto"
    save: tuple[str, ...] = ("json", "voc", "png")

    def __post_init__(self) -> None:
        if self.patients < 8:
            raise ConfigError(f"the demo needs >= 8 patients for 3 splits, got {self.patients}")
        if self.epochs < 1 or self.slices < 8 or self.size < 64:
            raise ConfigError(
                f"demo needs epochs >= 1, slices >= 8, size >= 64; got {self.epochs}, "
                f"{self.slices}, {self.size}"
            )
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


def _test_patient_folders(dicom_root: Path, patients: list[str]) -> list[Path]:
    """The DICOM folders of the given patients (by the TCIA naming of the phantom)."""
    wanted = {f"Lung_Dx-{p}" for p in patients}
    return sorted(p for p in dicom_root.iterdir() if p.name in wanted)


def run_demo(config: DemoConfig, stage: Stage | None = None,
             on_epoch: Epoch | None = None) -> DemoSummary:
    """Run every stage into ``config.out``; returns where to look."""
    from detect.config import ConvertConfig
    from detect.convert import convert
    from detect.dataset import load_dataset
    from detect.eval import EvalConfig, run_eval
    from detect.predict import PredictConfig, predict, predict_split
    from detect.synth.cohort import SynthConfig, synthesize
    from detect.train import TrainConfig, train

    say = stage or (lambda text: log.info(text))
    seconds: dict[str, float] = {}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        seconds[name] = round(time.monotonic() - clock, 1)
        clock = time.monotonic()

    out = config.out
    say(f"1/5 synth: {config.patients} phantom patients, {config.slices} slices, {config.size} px")
    cohort = synthesize(out / "phantom", SynthConfig(
        patients=config.patients, slices=config.slices, size=config.size, seed=config.seed))
    lap("synth")
    say("2/5 convert: DICOM + VOC → PNG dataset (COCO + YOLO), split by patient")
    convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, out / "dataset",
                          seed=config.seed, split=(0.6, 0.2, 0.2)))
    dataset = load_dataset(out / "dataset")
    lap("convert")
    say(f"3/5 train: yolov8n from its YAML, {config.epochs} epochs (no download)")
    result = train(TrainConfig(model="yolov8", data=dataset.root, size="n",
                               epochs=config.epochs, batch=config.batch, device=config.device,
                               project=out / "runs", name="demo", seed=config.seed),
                   on_epoch=on_epoch)
    lap("train")
    say("4/5 eval: test split → metrics.json, report.md, report.html")
    evaluation = run_eval(EvalConfig(data=dataset.root, split="test", weights=result.run_dir,
                                     out=out / "eval", device=config.device, seed=config.seed),
                          predict_split=predict_split)
    lap("eval")
    say("5/5 predict: the test patients' DICOM folders → predictions, VOC XML, overlays")
    sources = _test_patient_folders(cohort.dicom_root, dataset.splits["test"])
    predicted = predict(PredictConfig(sources=tuple(sources), weights=result.run_dir,
                                      out=out / "predict", save=config.save,
                                      device=config.device))
    lap("predict")
    metrics = {
        "mAP50": evaluation.result.map50, "mAP50-95": evaluation.result.map50_95,
        "AP@0.1": evaluation.result.ap10, "FROC mean": evaluation.result.froc_mean,
        "patient sensitivity": evaluation.result.patient_sensitivity,
        "test patients": len(dataset.splits["test"]), "slices predicted": predicted.slices,
        "detections": predicted.detections,
    }
    return DemoSummary(out=out, report=evaluation.files["report_html"],
                       predictions=predicted.out, run_dir=result.run_dir, metrics=metrics,
                       seconds=seconds)
