"""One command for the day a GPU is lent: does detect's GPU path work, and how fast is it?

On one GPU, within about 8 minutes, in a scratch folder (nothing outside it is written):

1. a phantom cohort (24 patients x 48 slices at 512 px) converted to a 4-class dataset;
2. ``detect train --model yolov8`` (yolov8n, 3 epochs, 512 px, AMP auto = bf16 where the
   GPU has it) and ``--model fasterrcnn`` (resnet50_fpn_v2, 1 epoch, AMP) on GPU 0;
3. with two or more GPUs, the same YOLO run on ``--device 0,1`` (ultralytics DDP) and the
   Faster R-CNN one on two processes (NCCL);
4. ``detect predict`` end to end from DICOM (a 200-slice series at 512 px) with the YOLO
   run, in a fresh process: slices per second, plus the detector alone on the same slices.

Prints one table (and writes ``--out/gpu_check.json``); a stage that fails is a row with
its one-line error, so one broken path does not hide the others. Record the table in
tools/benchmarks/RESULTS.md with the device named (nvidia-smi's name is in the JSON).

usage: python tools/gpu_check.py [--out /tmp/gpu-check] [--quick]
       (--quick: 8 patients at 128 px, 1 YOLO epoch, mobilenet Faster R-CNN, 40 slices:
       a smoke run of the script itself on a CPU machine)
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _timed(rows: list[dict[str, Any]], stage: str, action: Callable[[], dict[str, Any]]) -> None:
    start = time.perf_counter()
    try:
        row = {"stage": stage, "ok": True, **action()}
    except Exception as exc:  # a broken stage is reported, the next one still runs
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        row = {"stage": stage, "ok": False, "error": f"{type(exc).__name__}: {first[:160]}"}
    row["seconds"] = round(time.perf_counter() - start, 1)
    rows.append(row)
    print(f"  {stage}: {'ok' if row['ok'] else row['error']} ({row['seconds']} s)", flush=True)


def _gpus() -> tuple[int, list[str]]:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return count, [torch.cuda.get_device_name(i) for i in range(count)]


def _train(data: Path, project: Path, model: str, epochs: int, device: str, name: str,
           imgsz: int, **extra: Any) -> dict[str, Any]:
    from detect.train import TrainConfig, train

    options: dict[str, Any] = {"batch": 16, **extra}
    result = train(TrainConfig(model=model, data=data, epochs=epochs, imgsz=imgsz, device=device,
                               project=project, name=name, **options))
    images = sum(1 for _ in (data / "images" / "train").glob("*.png"))
    return {"images_per_s": round(images * result.epochs_done / max(result.seconds, 1e-9), 1),
            "mAP50": result.metrics.get("mAP50"), "run": str(result.run_dir)}


def _predict(source: Path, run: Path, out: Path, device: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "detect.cli", "predict", str(source), "--weights",
               str(run), "--out", str(out), "--device", device, "--save", "json"]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    slices = len({p["sop_instance_uid"] for p in json.loads(
        (out / "predictions.json").read_text())}) if (out / "predictions.json").is_file() else 0
    total = sum(1 for _ in source.rglob("*.dcm"))
    return {"slices": total, "slices_with_findings": slices,
            "slices_per_s": round(total / seconds, 1)}


def _inference_only(source: Path, run: Path, device: str) -> dict[str, Any]:
    from detect.models.detector import load_detector
    from detect.predict.sources import render_job, scan_sources, slice_jobs
    from detect.runs import resolve_weights

    info, weights = resolve_weights(run)
    detector = load_detector(info, weights, device)
    scan = scan_sources((source,))
    images = [rendered.image for series in scan.series
              for rendered in map(render_job, slice_jobs(series, info.recipe, False))
              if rendered.image is not None]
    detector.predict(images[:16], 0.25)  # warm-up (cuDNN autotune, allocator)
    start = time.perf_counter()
    for first in range(0, len(images), 16):
        detector.predict(images[first : first + 16], 0.25)
    return {"slices": len(images),
            "slices_per_s": round(len(images) / (time.perf_counter() - start), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/gpu-check"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    from detect.convert import convert
    from detect.convert.config import ConvertConfig
    from detect.synth import SynthConfig, synthesize

    count, names = _gpus()
    device = "0" if count else "cpu"
    print(f"GPUs: {count} {names}; device {device}", flush=True)
    shutil.rmtree(args.out, ignore_errors=True)
    patients, yolo_epochs, series_slices = (8, 1, 40) if args.quick else (24, 3, 200)
    size = 128 if args.quick else 512
    frcnn = {"backbone": "mobilenet_v3_large_fpn"} if args.quick else {}
    rows: list[dict[str, Any]] = []
    data = args.out / "data"

    def prepare() -> dict[str, Any]:
        cohort = synthesize(args.out / "cohort", SynthConfig(patients=patients, slices=48,
                                                             size=size, seed=0))
        summary = convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, data,
                                        negatives=2))
        return {"images": summary.images}

    _timed(rows, "synth + convert", prepare)
    runs = args.out / "runs"
    _timed(rows, f"train yolov8n {yolo_epochs} ep AMP",
           lambda: _train(data, runs, "yolov8", yolo_epochs, device, "yolo", size))
    _timed(rows, "train fasterrcnn 1 ep AMP",
           lambda: _train(data, runs, "fasterrcnn", 1, device, "frcnn", size, batch=8, **frcnn))
    if count >= 2:
        _timed(rows, "train yolov8n DDP 0,1",
               lambda: _train(data, runs, "yolov8", 1, "0,1", "yolo-ddp", size))
        _timed(rows, "train fasterrcnn 2 proc NCCL",
               lambda: _train(data, runs, "fasterrcnn", 1, "0,1", "frcnn-ddp", size, batch=8))
    series = synthesize(args.out / "series", SynthConfig(
        patients=1, slices=series_slices, size=size, seed=1, fused=False)).dicom_root
    yolo_run = runs / "yolov8" / "yolo"
    _timed(rows, "predict from DICOM (CLI)",
           lambda: _predict(series, yolo_run, args.out / "pred", device))
    _timed(rows, "inference only", lambda: _inference_only(series, yolo_run, device))
    print("\n| stage | ok | s | figures |\n|---|---|---|---|")
    for row in rows:
        figures = {k: v for k, v in row.items() if k not in ("stage", "ok", "seconds", "run")}
        print(f"| {row['stage']} | {'yes' if row['ok'] else 'NO'} | {row['seconds']} | "
              f"{', '.join(f'{k} {v}' for k, v in figures.items())} |")
    report = {"gpus": names, "device": device, "machine": platform.node(),
              "python": platform.python_version(), "rows": rows}
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
