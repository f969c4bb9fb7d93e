"""Benchmark ``detect predict URL`` (a DICOMweb server) against the same slices in a folder.

One long CT series (default 1,000 slices of 512 px) is made from the real sample's 30
slices (JPEG 2000, as TCIA stores them): the same pixels repeated, new UIDs, positions one
slice spacing apart. It is stored in a throw-away Orthanc with its DICOMweb plugin on
127.0.0.1 (tools/orthanc_local.py), then, in turns (``--repeats``), predicted:

- ``folder``: ``detect predict FOLDER`` on the files;
- ``dicomweb``: ``detect predict URL --study UID`` (QIDO-RS, then WADO-RS of each instance
  into a temporary folder, a series ahead of the model);

each in a fresh process with the shipped real model (``weights/real-yolov8n``) on the CPU,
its wall time and its peak RSS (the process's own, from ``wait4``; on the CPU predict runs
in one process). ``fetch`` is ``detect download --dicomweb`` of the same study (WADO-RS
alone). Goals (issue 19): the DICOMweb rate at least 80 % of the folder's, its peak RSS
within 1.2 times the folder's.

usage: python tools/benchmarks/dicomweb.py [--slices 1000] [--repeats 2] [--no-save]
smoke: python tools/benchmarks/dicomweb.py --slices 60 --repeats 1 --no-save
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from record import arguments, record

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))  # tools/: orthanc_local

from orthanc_local import http, orthanc  # noqa: E402


def long_series(folder: Path, slices: int) -> tuple[str, list[Path]]:
    """``slices`` CT files from the real sample's, one series; (StudyUID, files)."""
    import uuid

    import pydicom

    sample = sorted((ROOT / "datasets/lung-pet-ct-dx/sample").rglob("*.dcm"))
    study, series = (f"2.25.{uuid.uuid4().int}" for _ in range(2))  # + ".k": <= 64 chars
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(slices):
        ds = pydicom.dcmread(sample[k % len(sample)])
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{series}.{k + 1}"
        ds.InstanceNumber = k + 1
        x, y, _ = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, -2.0 * k]
        path = folder / f"{k + 1:05d}.dcm"
        ds.save_as(path)
        files.append(path)
    return study, files


def run(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed: {stderr.strip()[-400:]}")
    return seconds, usage.ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--weights", type=Path, default=ROOT / "weights/real-yolov8n")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    detect = [sys.executable, "-m", "detect.cli"]
    rows: dict[str, list[tuple[float, float]]] = {"folder": [], "dicomweb": [], "fetch": []}
    with tempfile.TemporaryDirectory(prefix="detect-bench-dicomweb-") as tmp:
        work = Path(tmp)
        study, files = long_series(work / "series", args.slices)
        with orthanc(work / "orthanc") as rest:
            start = time.perf_counter()
            for path in files:
                http("POST", f"{rest}/instances", path.read_bytes())
            store_s = time.perf_counter() - start
            url = f"{rest}/dicom-web"
            common = ["--weights", str(args.weights), "--device", "cpu", "--save", "json"]
            for repeat in range(args.repeats):
                for name in (("folder", "dicomweb") if repeat % 2 == 0 else
                             ("dicomweb", "folder")):
                    out = work / f"out-{name}-{repeat}"
                    source = [str(work / "series")] if name == "folder" else [url, "--study",
                                                                              study]
                    rows[name].append(run([*detect, "predict", *source, *common, "--out",
                                           str(out)]))
                    shutil.rmtree(out)
                target = work / f"download-{repeat}"
                rows["fetch"].append(run([*detect, "download", str(target), "--dicomweb", url,
                                          "--study", study, "--modality", "CT"]))
                shutil.rmtree(target)
    best = {name: (min(s for s, _ in runs), max(m for _, m in runs))
            for name, runs in rows.items()}
    rate = {name: args.slices / seconds for name, (seconds, _) in best.items()}
    ratio_rate = rate["dicomweb"] / rate["folder"]
    ratio_rss = best["dicomweb"][1] / best["folder"][1]
    lines = [
        f"one CT series of {args.slices} slices (512 px, JPEG 2000: the real sample's pixels "
        f"repeated), Orthanc {_version()} with DICOMweb on 127.0.0.1; `detect predict` with "
        f"weights/real-yolov8n, --device cpu, --save json, a fresh process each, best of "
        f"{args.repeats} (in turns); storing the series into Orthanc took {store_s:.0f} s",
        "| source | wall s | slices/s | peak RSS MiB |", "|---|---|---|---|"]
    for name, (seconds, rss) in best.items():
        label = {"folder": "folder", "dicomweb": "DICOMweb (QIDO + WADO-RS)",
                 "fetch": "download --dicomweb (fetch only)"}[name]
        lines.append(f"| {label} | {seconds:.1f} | {rate[name]:.1f} | {rss:.0f} |")
    lines += ["", f"- DICOMweb rate / folder rate: **{ratio_rate:.2f}** (goal >= 0.80)",
              f"- DICOMweb peak RSS / folder peak RSS: **{ratio_rss:.2f}** (goal <= 1.20)"]
    text = "\n".join(lines)
    print(text)
    result = {"args": arguments(args), "runs": rows, "rate": rate,
              "rate_ratio": ratio_rate, "rss_ratio": ratio_rss, "store_s": store_s}
    if not args.no_save:
        record("dicomweb", "dicomweb", text, result, device="cpu")
    return result


def _version() -> str:
    done = subprocess.run(["Orthanc", "--version"], capture_output=True, text=True)
    first = (done.stdout or done.stderr).splitlines()[:1]
    return first[0].split()[-1] if first else "?"


if __name__ == "__main__":
    main()
