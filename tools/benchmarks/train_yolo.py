"""Benchmark `detect train` (YOLO) on a phantom cohort: accuracy, speed, overhead.

In one run, on one converted phantom dataset:

- ``direct``: ultralytics' own ``YOLO(<arch>.yaml).train(data=<dataset>/data.yaml, ...)``
  in a fresh Python process, same epochs / size / batch / seed / device, offline;
- ``detect``: ``detect train`` in a fresh process, once per ``--class-weighting`` mode.

For each: wall seconds (start-up included), training images per second, overhead vs
``direct``, and mAP50 / mAP50-95 on the test split scored by detect's evaluator
(``predict_split`` + ``evaluate_predictions``, the same code as ``detect eval``), plus
AP50 per class and patient-level histology balanced accuracy (from the class scores).
AMP is off in both runs (same numerics on CPU and GPU).
Prints a table, writes tools/benchmarks/results/train_yolo.json and appends to RESULTS.md.

usage: python tools/benchmarks/train_yolo.py [--patients 24] [--slices 32] [--size 256]
       [--epochs 30] [--model yolov8[,yolo26]] [--model-size n] [--weighting none,sampler,loss]
       [--no-direct] [--train-args "--nbs 16 --optimizer AdamW --lr0 0.004 --mosaic 0"]
       [--device auto] [--batch 16] [--workers 2] [--repeats 2] [--keep DIR]
smoke: python tools/benchmarks/train_yolo.py --patients 8 --slices 12 --size 64 --epochs 1 \
       --weighting none,sampler --repeats 1 --no-save
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from record import arguments, record

HERE = Path(__file__).resolve().parent
DIRECT = """
import os, sys
os.environ.setdefault("YOLO_OFFLINE", "1")
from detect.models.yolo.env import prepare_ultralytics
prepare_ultralytics()  # same offline settings and font as detect, so both runs match
from ultralytics import YOLO
data, project, arch, epochs, imgsz, batch, device, workers = sys.argv[1:9]
YOLO(arch).train(data=data, project=project, name="direct", exist_ok=True, epochs=int(epochs),
                 imgsz=int(imgsz), batch=int(batch), device=device, workers=int(workers),
                 seed=0, deterministic=True, plots=False, pretrained=False, amp=False)
"""


def make_dataset(args: argparse.Namespace, work: Path) -> Path:
    from detect.convert import convert
    from detect.convert.config import ConvertConfig
    from detect.synth.cohort import SynthConfig, synthesize

    cohort = args.keep or work / "cohort"
    if not (cohort / "Annotation").is_dir():
        synthesize(cohort, SynthConfig(patients=args.patients, slices=args.slices,
                                       size=args.size, seed=0, fused=False))
    out = work / "dataset"
    convert(ConvertConfig(cohort / "Lung-PET-CT-Dx", cohort / "Annotation", out,
                          negatives=2, workers=args.workers))
    return out


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def score(run: Path, data: Path, device: str) -> dict[str, Any]:
    from detect.dataset import load_dataset
    from detect.eval import evaluate_predictions
    from detect.predict.split import predict_split

    dataset = load_dataset(data)
    predictions = predict_split(run, dataset, "test", device=device)
    result = evaluate_predictions(dataset, "test", predictions, bootstrap=0)
    head = (result.histology or {}).get("head") or {}
    per_class = result.detection.get("per_class", {})
    return {
        "mAP50": result.map50,
        "mAP50-95": result.map50_95,
        "ap50_per_class": {name: entry.get("ap50") for name, entry in per_class.items()},
        "histology_balanced_accuracy": (head.get("patient") or {}).get("balanced_accuracy"),
    }


def _best(rows: dict[str, dict[str, Any]], name: str, seconds: float, run: Path) -> None:
    if name not in rows or seconds < rows[name]["seconds"]:
        rows[name] = {"seconds": seconds, "run": run}


def run_all(args: argparse.Namespace, data: Path, work: Path) -> dict[str, dict[str, Any]]:
    from detect.device import resolve_device

    device = resolve_device(args.device)
    train_images = len(list((data / "images" / "train").glob("*.png")))
    imgsz = str(args.imgsz or args.size)
    rows: dict[str, dict[str, Any]] = {}
    for model in args.model.split(","):
        arch = f"{model}{args.model_size}.yaml"
        direct = [sys.executable, "-c", DIRECT, str(data / "data.yaml"), str(work / "direct"),
                  arch, str(args.epochs), imgsz, str(args.batch), device, str(args.workers)]
        for repeat in range(args.repeats):  # interleaved, best of repeats: same cache state
            if not args.no_direct:
                _best(rows, f"{model} direct", timed(direct), work / "direct" / "direct")
            for mode in args.weighting.split(","):
                name = f"{model}-{mode}-{repeat}"
                command = [sys.executable, "-m", "detect.cli", "train", "--model", model,
                           "--size", args.model_size, "--data", str(data), "--epochs",
                           str(args.epochs), "--imgsz", imgsz, "--batch", str(args.batch),
                           "--device", args.device, "--workers", str(args.workers),
                           "--project", str(work / "runs"), "--name", name,
                           "--class-weighting", mode, "--amp", "off",
                           *shlex.split(args.train_args)]
                _best(rows, f"{model} detect/{mode}", timed(command),
                      work / "runs" / model / name)
    for name, row in rows.items():
        direct_row = rows.get(f"{name.split()[0]} direct")
        is_direct = name.endswith(" direct")
        model_json = Path(row["run"]) / "model.json"
        sampling = {} if is_direct else json.loads(model_json.read_text())["args"]["sampling"]
        row["images_per_s"] = sampling.get("listed", train_images) * args.epochs / row["seconds"]
        row["overhead"] = (row["seconds"] / direct_row["seconds"] - 1.0) if direct_row else None
        row.update(score(row["run"], data, args.device) if not is_direct else {})
        row["run"] = str(row["run"])
    return rows


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _overhead(row: dict[str, Any]) -> str:
    return "n/a" if row["overhead"] is None else f"{row['overhead'] * 100:+.1f}%"


def _per_class(row: dict[str, Any]) -> str:
    values = row.get("ap50_per_class") or {}
    return " ".join(f"{name} {_fmt(value)}" for name, value in values.items()) or "n/a"


def report(args: argparse.Namespace, rows: dict[str, dict[str, Any]], data: Path) -> None:
    manifest = json.loads((data / "dataset.json").read_text())
    counts = {k: v["images"] for k, v in manifest["counts"].items()}
    lines = [
        f"cohort: {args.patients} patients x {args.slices} slices at {args.size} px; images "
        f"{counts}; {args.model} size {args.model_size}, {args.epochs} epochs, imgsz "
        f"{args.imgsz or args.size}, batch {args.batch}, device {args.device}",
        "| run | seconds | train images/s | overhead vs direct | test mAP50 | test mAP50-95 "
        "| AP50 per class | histology bal. acc. |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['seconds']:.1f} | {row['images_per_s']:.1f} | "
            f"{_overhead(row)} | {_fmt(row.get('mAP50'))} | "
            f"{_fmt(row.get('mAP50-95'))} | {_per_class(row)} | "
            f"{_fmt(row.get('histology_balanced_accuracy'))} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.no_save:
        return
    name = "train_yolo" if args.model == "yolov8" else f"train_yolo-{args.model.replace(',', '-')}"
    record(name, name, text,
           {"args": arguments(args), "rows": rows, "counts": counts})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=24)
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--size", type=int, default=256, help="phantom image size, px")
    parser.add_argument("--imgsz", type=int, default=None, help="training size (default --size)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--model", default="yolov8",
                        help="YOLO families, comma list: yolov8, yolo11, yolo26")
    parser.add_argument("--no-direct", action="store_true",
                        help="skip ultralytics' own runs (no overhead column)")
    parser.add_argument("--model-size", default="n", choices=tuple("nsmlx"))
    parser.add_argument("--weighting", default="none,sampler,loss")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="best of N wall times")
    parser.add_argument("--train-args", default="",
                        help="more `detect train` options for the detect runs, one string, "
                             "e.g. \"--nbs 16 --optimizer AdamW --lr0 0.004 --mosaic 0\" "
                             "(the demo's short recipe)")
    parser.add_argument("--no-save", action="store_true", help="print only (smoke runs)")
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep the cohort here")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-train-yolo-"))
    try:
        data = make_dataset(args, work)
        report(args, run_all(args, data, work), data)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
