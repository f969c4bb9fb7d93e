"""Benchmark the base install (``pip install detect``: no torch, no ultralytics, no OpenCV)
against the full one on the repository's real sample (A0002, 30 slices, JPEG 2000).

Measured, in one run:

- install size: the base venv (``.venv-base``, built by ``make test``) and the full
  ``.venv``, on disk (MB, bytecode included), and the base's five largest packages;
- ``detect predict`` of the sample, each in a fresh process (best of ``--repeats``):
  base + ONNX, full + ONNX, full + PyTorch (``weights/real-yolov8n``); peak RSS of the
  process, seconds from launch to the first slice's prediction, whole-run seconds and
  slices per second; and base + ONNX over a whole study (E0003, 212 slices) when
  ``../shared/realdata`` is there, where the start-up weighs as on a user's folder;
- the inference-only rate of each model (ONNX Runtime, torch) on the slices already
  rendered: the floor, and each CLI run's share of it, from the launch (interpreter,
  imports and the model's loading included) and after the first slice (the pipeline's
  own rate: reading, decoding, the model, the lung field, lesions, writing).

The ONNX model is the shipped real model exported here (``detect export``). Prints a table,
writes tools/benchmarks/results/base_install.json and appends to RESULTS.md.

usage: python tools/benchmarks/base_install.py [--repeats 3] [--no-save]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from record import arguments, record

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "datasets" / "lung-pet-ct-dx" / "sample" / "Lung-PET-CT-Dx"
#: A whole study (E0003: two CT series, 212 slices, GE), where the start-up is amortised as
#: on a user's folder; measured with the base install and ONNX only, when the folder is there.
STUDY = REPO.parent / "shared" / "realdata" / "lung-pet-ct-dx-E0003" / "Lung-PET-CT-Dx"
REAL = REPO / "weights" / "real-yolov8n"
BASE = REPO / ".venv-base" / "bin" / "python"
FULL = REPO / ".venv" / "bin" / "python"

#: Run in a fresh interpreter: predict the sample, report the first slice's moment and RSS.
CHILD = """
import json, resource, sys, time
from pathlib import Path
from detect.predict.run import PredictConfig, predict
first = []
def progress(done, total):
    if done >= 1 and not first:
        first.append(time.time())
summary = predict(PredictConfig(sources=(Path(sys.argv[1]),), weights=Path(sys.argv[2]),
                                out=Path(sys.argv[3]), device="cpu"), progress=progress)
print(json.dumps({"first": first[0], "end": time.time(), "slices": summary.slices,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "torch": "torch" in sys.modules}))
"""

INFERENCE = """
import json, sys, time
import numpy as np
from pathlib import Path
from detect.models.detector import load_detector
from detect.predict.sources import render_job, scan_sources, slice_jobs
from detect.runs import resolve_weights
info, weights = resolve_weights(Path(sys.argv[2]))
scan = scan_sources((Path(sys.argv[1]),), workers=1)
images = [render_job(job).image for s in scan.series
          for job in slice_jobs(s, info.recipe, False)]
detector = load_detector(info, weights, "cpu")
detector.predict(images[:2], info.conf)
best = float("inf")
for _ in range(int(sys.argv[3])):
    start = time.perf_counter()
    for k in range(0, len(images), 16):
        detector.predict(images[k:k + 16], info.conf)
    best = min(best, time.perf_counter() - start)
print(json.dumps({"slices": len(images), "seconds": best}))
"""


def _mb(path: Path) -> float:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[0])


def _largest(venv: Path, count: int = 5) -> list[tuple[str, float]]:
    site = next((venv / "lib").glob("python3*/site-packages"))
    sizes: dict[str, float] = {}
    for entry in site.iterdir():
        name = entry.name.split(".libs")[0].split("-")[0].split(".")[0].lower()
        sizes[name] = sizes.get(name, 0.0) + _mb(entry)
    return sorted(sizes.items(), key=lambda kv: -kv[1])[:count]


def _predict(python: Path, weights: Path, out: Path, source: Path = SAMPLE) -> dict[str, Any]:
    launched = time.time()
    done = subprocess.run([str(python), "-c", CHILD, str(source), str(weights), str(out)],
                          capture_output=True, text=True, check=True, cwd=REPO)
    data = json.loads(done.stdout.strip().splitlines()[-1])
    seconds = data["end"] - launched
    # after the first slice: the pipeline's own rate (reading, decoding, the model, the lung
    # field, writing), without the interpreter's start, the imports and the model's loading
    steady = (data["slices"] - 1) / max(data["end"] - data["first"], 1e-9)
    return {"first_slice_s": round(data["first"] - launched, 2), "seconds": round(seconds, 2),
            "slices_per_s": round(data["slices"] / seconds, 2),
            "steady_slices_per_s": round(steady, 2),
            "peak_rss_mb": round(data["rss_mb"], 1), "torch_imported": data["torch"]}


def _inference(python: Path, weights: Path, repeats: int, source: Path = SAMPLE) -> float:
    done = subprocess.run([str(python), "-c", INFERENCE, str(source), str(weights),
                           str(repeats)], capture_output=True, text=True, check=True, cwd=REPO)
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return round(data["slices"] / data["seconds"], 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    if not BASE.is_file():
        sys.exit("no .venv-base: run make test first (it builds the base install)")
    work = Path(tempfile.mkdtemp(prefix="bench-base-"))
    subprocess.run([str(REPO / ".venv" / "bin" / "detect"), "export", "--weights", str(REAL),
                    "--format", "onnx", "--out", str(work / "onnx")], check=True,
                   capture_output=True)
    onnx = work / "onnx" / "model.onnx"
    cases = {"base + onnx": (BASE, onnx), "full + onnx": (FULL, onnx),
             "full + torch": (FULL, REAL)}
    floors = {"onnx": _inference(FULL, onnx, args.repeats),
              "torch": _inference(FULL, REAL, args.repeats)}
    sources = {name: SAMPLE for name in cases}
    if STUDY.is_dir():
        study = "base + onnx, study E0003"
        cases[study] = (BASE, onnx)
        sources[study] = STUDY
        floors[study] = _inference(FULL, onnx, args.repeats, STUDY)
    rows: dict[str, dict[str, Any]] = {}
    for name, (python, weights) in cases.items():
        runs = [_predict(python, weights, work / f"{name}-{k}".replace(" ", ""), sources[name])
                for k in range(args.repeats)]
        best = min(runs, key=lambda r: r["seconds"])
        floor = floors.get(name) or floors["onnx" if weights.suffix == ".onnx" else "torch"]
        rows[name] = {**best, "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                      "inference_only_per_s": floor,
                      "share_of_inference": round(best["slices_per_s"] / floor, 3),
                      "steady_share": round(best["steady_slices_per_s"] / floor, 3)}
    sizes = {"base_mb": _mb(REPO / ".venv-base"), "full_mb": _mb(REPO / ".venv"),
             "base_largest": _largest(REPO / ".venv-base")}
    lines = [f"install: base {sizes['base_mb']:.0f} MB, full {sizes['full_mb']:.0f} MB; "
             f"base's largest: " + ", ".join(f"{n} {mb:.0f} MB" for n, mb in
                                               sizes["base_largest"]), "",
             "| run | first slice s | whole s | slices/s | inference-only/s | share | "
             "after the first slice /s | share | peak RSS MB | torch imported |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['first_slice_s']} | {row['seconds']} | "
                     f"{row['slices_per_s']} | {row['inference_only_per_s']} | "
                     f"{row['share_of_inference']:.0%} | {row['steady_slices_per_s']} | "
                     f"{row['steady_share']:.0%} | {row['peak_rss_mb']} | "
                     f"{row['torch_imported']} |")
    text = "\n".join(lines)
    print(text)
    if not args.no_save:
        record("base_install", "base install vs full: size, ONNX predict on the real sample",
               text + f"\n\n{args.repeats} repeats each; real sample A0002 B40f (30 slices), "
               f"and where ../shared/realdata is present the whole E0003 study (212 slices, "
               f"two CT series); weights/real-yolov8n (384 px) exported to ONNX.",
               {"args": arguments(args), "sizes": sizes, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
