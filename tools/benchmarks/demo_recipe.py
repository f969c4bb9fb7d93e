"""Benchmark the demo's training recipe: accuracy on the phantom test split against time.

``detect demo`` trains yolov8n on 128 phantom images (8 batches an epoch) inside a
10-minute budget on 2 CPU cores, install included. This script builds exactly the demo's
cohort and dataset (:func:`detect.demo.run.make_cohort`, :func:`detect.demo.run.make_dataset`),
trains it once per ``HYP:EPOCHS`` of ``--runs`` with the demo's own options
(:func:`detect.demo.run.train_config`), and scores each run on the test split with detect's
evaluator (the numbers ``detect eval`` and the demo print): mAP50, mAP50-95, AP@0.1, FROC
mean, per-patient sensitivity, plus the training seconds.

Hyperparameter sets (:data:`detect.demo.run.HYPERPARAMETERS`): ``ultralytics`` = its defaults
(an optimizer step per 64 images, AdamW at lr 0.00125 for 4 classes, mosaic), the recipe of
the shipped phantom checkpoint at 60 epochs; ``short`` = a step per batch, AdamW lr 0.004,
no mosaic (the demo's default since 2026-12-01, 30 epochs).

Prints a table, writes tools/benchmarks/results/demo_recipe.json and appends to RESULTS.md.

usage (about 13 min on 2 idle CPU cores):
    python tools/benchmarks/demo_recipe.py [--runs ultralytics:60,short:30] [--device auto]
smoke (~1 min):
    python tools/benchmarks/demo_recipe.py --runs short:1,ultralytics:1 --patients 8 \
        --slices 12 --size 64 --no-save
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from record import arguments, record


def parse_runs(text: str) -> list[tuple[str, int]]:
    runs = []
    for item in text.split(","):
        hyp, _, epochs = item.partition(":")
        runs.append((hyp.strip(), int(epochs)))
    return runs


def run_all(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    from detect.demo.run import DemoConfig, make_cohort, make_dataset, train_config
    from detect.eval import evaluate_predictions
    from detect.predict.split import predict_split
    from detect.train import train

    def demo(hyp: str, epochs: int) -> DemoConfig:
        return DemoConfig(out=work / f"{hyp}-{epochs}", patients=args.patients,
                          slices=args.slices, size=args.size, epochs=epochs, hyp=hyp,
                          device=args.device)

    first = demo(*parse_runs(args.runs)[0])
    dataset = make_dataset(first, make_cohort(first, work / "phantom"), work / "dataset")
    rows = []
    for hyp, epochs in parse_runs(args.runs):
        config = demo(hyp, epochs)
        start = time.perf_counter()
        result = train(train_config(config, dataset.root, config.out / "runs"))
        seconds = time.perf_counter() - start
        predictions = predict_split(result.run_dir, dataset, "test", device=args.device)
        scored = evaluate_predictions(dataset, "test", predictions, bootstrap=0)
        rows.append({
            "hyp": hyp, "epochs": epochs, "train_s": round(seconds, 1),
            "s_per_epoch": round(seconds / epochs, 2),
            "mAP50": scored.map50, "mAP50-95": scored.map50_95, "AP@0.1": scored.ap10,
            "FROC mean": scored.froc_mean, "patient sensitivity": scored.patient_sensitivity,
        })
        print(rows[-1], flush=True)
    return rows


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    columns = ("mAP50", "mAP50-95", "AP@0.1", "FROC mean", "patient sensitivity")
    lines = [
        f"phantom: {args.patients} patients x {args.slices} slices at {args.size} px (the "
        f"demo's cohort and split, seed 0), yolov8n from its YAML, batch 16, device "
        f"{args.device}; scores on the test split (7 patients at the default size)",
        "| hyp | epochs | train s | s/epoch | " + " | ".join(columns) + " |",
        "|---|---|---|---|" + "---|" * len(columns),
    ]
    for row in rows:
        lines.append(f"| {row['hyp']} | {row['epochs']} | {row['train_s']:.1f} | "
                     f"{row['s_per_epoch']:.2f} | "
                     + " | ".join(_fmt(row[c]) for c in columns) + " |")
    text = "\n".join(lines)
    print(text)
    if not args.no_save:
        record("demo_recipe", "demo_recipe", text, {"args": arguments(args), "rows": rows})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", default="ultralytics:60,short:30",
                        help="HYP:EPOCHS, comma-separated (HYP: short or ultralytics)")
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--slices", type=int, default=48)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-save", action="store_true", help="print only (smoke runs)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-demo-recipe-"))
    try:
        report(args, run_all(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
