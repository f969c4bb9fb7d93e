"""Benchmark `detect predict`: slices per second on a synthetic CT series.

A phantom patient with one long CT series (default 200 slices of 512 px) is predicted on
with a YOLO run folder (``--weights``; default: a yolov8n trained one epoch on a tiny
phantom dataset at ``--imgsz``, which is as fast as a trained one). Measured, in the
same run, each best of ``--repeats``:

- ``cli``: ``detect predict`` in a fresh process (start-up, model load, header scan,
  decode, render, inference, writers), per ``--workers`` value;
- ``library``: ``detect.predict.run.predict`` in this process (model already imported);
- ``inference``: the detector alone on pre-rendered slices (the floor for the device).

Each for PyTorch and for ONNX Runtime (the run exported with ``detect export --format
onnx``, ``--runtimes``); the last lines give the CLI's share of the inference-only rate and
ONNX Runtime's speed-up over torch.

On CPU, and on CUDA too when there is one. Prints a table, writes
tools/benchmarks/results/predict.json and appends to RESULTS.md.

usage: python tools/benchmarks/predict.py [--slices 200] [--size 512] [--imgsz 512]
       [--workers 1,4] [--batch 16] [--weights RUN] [--repeats 2] [--runtimes torch,onnx]
       [--no-save]
smoke: python tools/benchmarks/predict.py --slices 20 --size 128 --imgsz 128 --repeats 1 --no-save
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from record import arguments, record

HERE = Path(__file__).resolve().parent


def tiny_run(work: Path, imgsz: int) -> Path:
    """A yolov8n trained one epoch at ``imgsz`` on a 4-patient phantom (speed only)."""
    from detect.convert import convert
    from detect.convert.config import ConvertConfig
    from detect.synth.cohort import SynthConfig, synthesize
    from detect.train import TrainConfig, train

    cohort = synthesize(work / "train-cohort", SynthConfig(
        patients=4, slices=12, size=imgsz, seed=0, letter_mix={"A": 3, "B": 1}, fused=False))
    convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, work / "train-data",
                          workers=1))
    result = train(TrainConfig(model="yolov8", data=work / "train-data", epochs=1, imgsz=imgsz,
                               batch=4, device="cpu", project=work / "runs", workers=0))
    return result.run_dir


def series(work: Path, slices: int, size: int) -> Path:
    from detect.synth.cohort import SynthConfig, synthesize

    cohort = synthesize(work / "cohort", SynthConfig(
        patients=1, slices=slices, size=size, seed=0, fused=False, compression="none"))
    return cohort.dicom_root


def cli_seconds(source: Path, weights: Path, out: Path, workers: int, batch: int,
                device: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "detect.cli", "predict", str(source), "--weights",
               str(weights), "--out", str(out), "--workers", str(workers), "--batch", str(batch),
               "--device", device, "--save", "json,voc"]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def library_seconds(source: Path, weights: Path, out: Path, workers: int, batch: int,
                    device: str) -> float:
    from detect.predict.run import PredictConfig, predict

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    predict(PredictConfig(sources=(source,), weights=weights, out=out, workers=workers,
                          batch=batch, device=device))
    return time.perf_counter() - start


def inference_seconds(source: Path, weights: Path, batch: int, device: str) -> float:
    from detect.models.detector import load_detector
    from detect.predict.sources import render_job, scan_sources, slice_jobs
    from detect.runs import resolve_weights

    info, path = resolve_weights(weights)
    detector = load_detector(info, path, device)
    (one,) = scan_sources([source]).series
    rendered = [render_job(job).image for job in slice_jobs(one, info.recipe, False)]
    images = [image for image in rendered if image is not None]
    detector.predict(images[:batch], 0.25)  # warm-up
    start = time.perf_counter()
    for i in range(0, len(images), batch):
        detector.predict(images[i : i + batch], 0.25)
    if device != "cpu":
        import torch

        torch.cuda.synchronize()
    return time.perf_counter() - start


def onnx_file(weights: Path, work: Path) -> Path:
    """The run exported with ``detect export --format onnx`` (parity-checked)."""
    from detect.export import ExportConfig, export_model

    return export_model(ExportConfig(weights=weights, format="onnx", out=work / "onnx")).file


def measure(args: argparse.Namespace, source: Path, weights: Path, work: Path
            ) -> list[dict[str, Any]]:
    import torch

    devices = ["cpu"] + (["0"] if torch.cuda.is_available() else [])
    runtimes = {"torch": weights}
    if "onnx" in args.runtimes.split(","):
        runtimes["onnx"] = onnx_file(weights, work)
    rows = []
    for device in devices:
        for runtime, model in runtimes.items():
            for workers in (int(w) for w in args.workers.split(",")):
                for kind, fn in (("cli", cli_seconds), ("library", library_seconds)):
                    best = min(fn(source, model, work / "out", workers, args.batch, device)
                               for _ in range(args.repeats))
                    rows.append({"device": device, "runtime": runtime, "kind": kind,
                                 "workers": workers, "seconds": best,
                                 "slices_per_s": args.slices / best})
            best = min(inference_seconds(source, model, args.batch, device)
                       for _ in range(args.repeats))
            rows.append({"device": device, "runtime": runtime, "kind": "inference", "workers": 0,
                         "seconds": best, "slices_per_s": args.slices / best})
    return rows


def ratios(rows: list[dict[str, Any]]) -> list[str]:
    """CLI rate / inference-only rate per runtime, and ONNX / torch inference rate."""
    lines = []
    best: dict[tuple[str, str, str], float] = {}
    for row in rows:
        key = (row["device"], row["runtime"], row["kind"])
        best[key] = max(best.get(key, 0.0), row["slices_per_s"])
    for (device, runtime, kind), rate in sorted(best.items()):
        if kind == "cli" and (device, runtime, "inference") in best:
            share = rate / best[(device, runtime, "inference")]
            lines.append(f"{device} {runtime}: CLI at {100 * share:.0f} % of inference-only")
    for device in sorted({d for d, _, _ in best}):
        if (device, "onnx", "inference") in best and (device, "torch", "inference") in best:
            speedup = best[(device, "onnx", "inference")] / best[(device, "torch", "inference")]
            lines.append(f"{device}: ONNX Runtime inference {speedup:.2f}x torch")
    return lines


def report(args: argparse.Namespace, rows: list[dict[str, Any]], weights: Path) -> None:
    model = json.loads((weights / "model.json").read_text())
    lines = [
        f"one CT series of {args.slices} slices at {args.size} px; {model['family']}"
        f"{model['size']} at imgsz {model['imgsz']}; batch {args.batch}; save json,voc",
        "| device | runtime | run | workers | seconds | slices/s |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['device']} | {row['runtime']} | {row['kind']} | "
                     f"{row['workers'] or '-'} | {row['seconds']:.2f} | "
                     f"{row['slices_per_s']:.1f} |")
    lines += ["", *ratios(rows)]
    text = "\n".join(lines)
    print(text)
    if args.no_save:
        return
    record("predict", "predict", text, {"args": arguments(args), "rows": rows})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--imgsz", type=int, default=512, help="model size when training one")
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--weights", type=Path, default=None, help="a YOLO run folder")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--runtimes", default="torch,onnx", help="torch and/or onnx")
    parser.add_argument("--no-save", action="store_true", help="print only (smoke runs)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    try:
        weights = args.weights or tiny_run(work, args.imgsz)
        source = series(work, args.slices, args.size)
        report(args, measure(args, source, weights, work), weights)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
