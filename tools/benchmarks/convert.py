"""Benchmark `detect convert` against a naive converter and a floor, cold page cache.

On a phantom cohort (default 40 patients; about one CT slice in eight annotated, as in the
real collection) it times, in the same run and each after dropping the cohort's pages
from the page cache (posix_fadvise DONTNEED):

- ``detect``: the real command line, ``detect convert ... --workers W`` (start-up included);
- ``naive``: reads every file whole to find SOPInstanceUIDs, as TCIA's helper scripts do,
  then converts the annotated slices (same workers, same PNG settings);
- ``floor``: only the unavoidable work: a header-only read of every file, then read +
  decode + window + PNG encode of the annotated slices (same workers, same PNG settings).

Each run is its own process, timed from outside, so every one pays its interpreter
start-up and its imports (pydicom, numpy, OpenCV), as any converter a user starts does.

Cohorts: a phantom made here (``--patients``, ``--slices``, ``--size``), or an existing
tree (``--cohort DIR`` holding ``Lung-PET-CT-Dx/`` and ``Annotation/``; e.g. the shared real
patients staged by ``python tools/real_protocol.py stage DIR A0002 B0021 E0003``).

Prints a table, writes tools/benchmarks/results/convert.json and appends to RESULTS.md.
usage: python tools/benchmarks/convert.py [--patients 40] [--slices 64] [--workers 2] [--keep DIR]
       python tools/benchmarks/convert.py --cohort DIR [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut
from pydicom.tag import Tag
from record import arguments, record

from detect.io.png import encode_png  # the floor encodes exactly as detect does

HERE = Path(__file__).resolve().parent
WINDOWS = ((1400.0, -700.0), (350.0, 40.0), (1500.0, -400.0))
#: As tags, not keywords: pydicom resolves keywords again on every dcmread.
FLOOR_TAGS = [Tag(0x00080018), Tag(0x00280002)]  # SOPInstanceUID, SamplesPerPixel


def drop_cache(root: Path) -> int:
    """Evict the cohort's file pages from the page cache; returns files touched."""
    os.sync()
    count = 0
    for folder, _, files in os.walk(root, followlinks=True):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
            count += 1
    return count


def all_files(root: Path) -> list[str]:
    return sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(root, followlinks=True)
        for name in names
    )


def window_png(ds: pydicom.Dataset, out: str) -> tuple[float, float]:
    """Decode + window (returns seconds) and encode + write (seconds)."""
    start = time.perf_counter()
    hu = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    channels = [
        np.clip(np.rint((hu - (lvl - w / 2)) * (255.0 / w)), 0, 255).astype(np.uint8)
        for w, lvl in WINDOWS
    ]
    image = np.stack(channels, axis=-1)
    mid = time.perf_counter()
    Path(out).write_bytes(encode_png(image))
    return mid - start, time.perf_counter() - mid


def _header_uid(path: str) -> tuple[str, str | None]:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=FLOOR_TAGS)
        return path, _grey_uid(ds)
    except Exception:
        return path, None


def _grey_uid(ds: pydicom.Dataset) -> str | None:
    """The UID of a grey slice; None for the fused colour screenshots (not converted)."""
    return str(ds.SOPInstanceUID) if int(ds.get("SamplesPerPixel", 1)) == 1 else None


def _whole_uid(path: str) -> tuple[str, str | None]:
    try:
        return path, _grey_uid(pydicom.dcmread(path))
    except Exception:
        return path, None


def _convert_one(job: tuple[str, str]) -> tuple[float, float]:
    dicom_path, out = job
    return window_png(pydicom.dcmread(dicom_path), out)


def reference_run(kind: str, cohort: Path, out: Path, workers: int) -> dict[str, float]:
    """The naive converter or the floor in a process of its own, timed from outside."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--reference", kind, "--cohort", str(cohort),
         "--out", str(out), "--workers", str(workers)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(done.stdout) | {"total": time.perf_counter() - start}


def reference_work(kind: str, cohort: Path, out: Path, workers: int) -> dict[str, float]:
    """The naive converter (whole files) or the floor (headers only), in this process."""
    start = time.perf_counter()
    files = all_files(cohort / "Lung-PET-CT-Dx")
    wanted = {Path(f).stem for f in all_files(cohort / "Annotation") if f.endswith(".xml")}
    reader = _whole_uid if kind == "naive" else _header_uid
    with Pool(workers) as pool:
        uids = dict(pool.map(reader, files, chunksize=64))
        index_done = time.perf_counter()
        by_uid = {uid: path for path, uid in uids.items() if uid in wanted}
        out.mkdir(parents=True, exist_ok=True)
        jobs = [(path, str(out / f"{uid}.png")) for uid, path in sorted(by_uid.items())]
        times = pool.map(_convert_one, jobs, chunksize=4)
    end = time.perf_counter()
    return {
        "work": end - start,
        "index": index_done - start,
        "pixels_cpu": sum(t[0] for t in times),
        "encode_cpu": sum(t[1] for t in times),
        "images": len(jobs),
        "files": len(files),
    }


def detect_run(cohort: Path, out: Path, workers: int) -> dict[str, float]:
    exe = Path(sys.executable).with_name("detect")
    start = time.perf_counter()
    done = subprocess.run(
        [
            str(exe),
            "convert",
            str(cohort / "Lung-PET-CT-Dx"),
            str(cohort / "Annotation"),
            str(out),
            "--workers",
            str(workers),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    total = time.perf_counter() - start
    manifest = json.loads((out / "dataset.json").read_text())
    images = sum(manifest["counts"][s]["images"] for s in ("train", "val", "test"))
    phases = {
        f"phase_{name}": float(sec)
        for name, sec in re.findall(
            r"(index|plan|images|merge) ([0-9.]+)s", done.stdout.replace("\n", " ")
        )
    }
    return {"total": total, "images": images, "issues": len(manifest["issues"]), **phases}


def startup_seconds() -> tuple[float, bool]:
    """Time to import the convert path, and whether it pulled in torch/ultralytics."""
    code = (
        "import sys, time; t=time.perf_counter(); import detect.cli, detect.convert; "
        "print(time.perf_counter()-t, 'torch' in sys.modules or 'ultralytics' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    seconds, heavy = done.stdout.split()
    return float(seconds), heavy == "True"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep the cohort here")
    parser.add_argument("--cohort", type=Path, default=None, help="an existing cohort tree")
    parser.add_argument("--tag", default="", help="results/convert-TAG.json; RESULTS heading")
    parser.add_argument("--reference", choices=("floor", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reference:  # one reference run, in its own process (see reference_run)
        print(json.dumps(reference_work(args.reference, args.cohort, args.out, args.workers)))
        return

    work = Path(tempfile.mkdtemp(prefix="bench-convert-"))
    cohort = args.cohort or args.keep or work / "cohort"
    if not (cohort / "Annotation").is_dir():
        from detect.synth.cohort import SynthConfig, synthesize

        synthesize(
            cohort,
            SynthConfig(
                patients=args.patients, slices=args.slices, size=args.size, seed=0, fused=True
            ),
        )
    n_files = len(all_files(cohort / "Lung-PET-CT-Dx"))
    n_xml = sum(f.endswith(".xml") for f in all_files(cohort / "Annotation"))
    rows: dict[str, list[dict[str, float]]] = {"detect": [], "naive": [], "floor": []}
    for _ in range(args.repeats):
        for kind in ("floor", "naive", "detect"):
            out = work / f"out-{kind}"
            shutil.rmtree(out, ignore_errors=True)
            drop_cache(cohort)
            if kind == "detect":
                rows[kind].append(detect_run(cohort, out, args.workers))
            else:
                rows[kind].append(reference_run(kind, cohort, out, args.workers))
    best = {k: min(v, key=lambda r: r["total"]) for k, v in rows.items()}
    start_s, heavy = startup_seconds()
    report(args, best, rows, n_files, n_xml, start_s, heavy)
    shutil.rmtree(work, ignore_errors=True)


def report(
    args: argparse.Namespace,
    best: dict[str, dict[str, float]],
    rows: dict[str, list[dict[str, float]]],
    n_files: int,
    n_xml: int,
    start_s: float,
    heavy: bool,
) -> None:
    floor = best["floor"]["total"]
    shape = (
        f"{args.cohort}" if args.cohort
        else f"phantom {args.patients} patients x {args.slices} slices at {args.size} px"
    )
    lines = [
        f"cohort: {shape}, {n_files} DICOM files, {n_xml} XML; workers {args.workers}; "
        f"cold cache each run; best of {args.repeats}",
        "| run | seconds (best) | all runs | images | vs floor |",
        "|---|---|---|---|---|",
    ]
    for kind in ("detect", "naive", "floor"):
        row = best[kind]
        every = ", ".join(f"{r['total']:.2f}" for r in rows[kind])
        lines.append(
            f"| {kind} | {row['total']:.2f} | {every} | {int(row['images'])} "
            f"| {row['total'] / floor:.2f}x |"
        )
    f = best["floor"]
    lines.append(
        f"floor breakdown: start-up + imports {f['total'] - f['work']:.2f}s; "
        f"index {f['index']:.2f}s wall; decode+window "
        f"{f['pixels_cpu']:.2f}s CPU; PNG encode+write {f['encode_cpu']:.2f}s CPU"
    )
    phases = {k.removeprefix("phase_"): v for k, v in best["detect"].items() if "phase_" in k}
    rest = best["detect"]["total"] - sum(phases.values())
    lines.append(
        "detect phases (wall): "
        + ", ".join(f"{name} {sec:.2f}s" for name, sec in phases.items())
        + f"; the other {rest:.2f}s is interpreter start-up, imports and worker start"
    )
    lines.append(
        f"detect start-up (import cli+convert): {start_s:.2f}s; imports torch or "
        f"ultralytics: {heavy}"
    )
    text = "\n".join(lines)
    print(text)
    name = f"convert-{args.tag}" if args.tag else "convert"
    result = {"args": arguments(args), "runs": best, "all_runs": rows, "startup_s": start_s,
              "imports_heavy": heavy}
    record(name, name, text, result)


if __name__ == "__main__":
    main()
