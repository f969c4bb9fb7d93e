"""Benchmark `detect convert` at the size of the real archive: 40, 120 and 355 patients.

The cohort is a skeleton of the whole Lung-PET-CT-Dx collection built from IDC's offline
index (tools/benchmarks/skeleton.py: every patient, study and series with its real
instance count and modality, CT, PT and the RGB fused screenshots, at 64 x 64 px; about
one CT slice in eight annotated), about 251,000 files. Subsets of the first N patients
are hard-link trees of it (no extra disk). For each size, ``detect convert`` runs in a
fresh process (start-up included) after the subset's pages are dropped from the page
cache, and the script records:

- wall time and time per file (every file under the DICOM root counts: the index reads
  them all);
- peak memory of the whole process tree (the command and its workers, summed as PSS so
  that pages forked workers share with their parent count once; sampled every 20 ms);
- the size of the header index cache (OUT/.cache/dicom-index.json).

Goals (issue 12): time per file flat within 10 % from 40 to 355 patients; peak RSS
<= 1.5 GB at 355. Then ``--shard I/N`` over 2 and 4 shards (shards run one after the
other, the last one merges) must give the identical dataset: dataset.json (without its
timing and argument fields), every COCO file, every label and every PNG byte for byte.

Prints a table, writes tools/benchmarks/results/convert_scale.json and appends to RESULTS.md.
usage: python tools/benchmarks/convert_scale.py [--skeleton DIR] [--sizes 40,120,355]
       [--workers 2] [--shards 2,4] [--shard-patients 355] [--work DIR]
smoke: python tools/benchmarks/convert_scale.py --sizes 2,4 --shards 2 --shard-patients 4
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from convert import drop_cache  # noqa: E402  (the convert benchmark's page-cache eviction)
from record import record  # noqa: E402
from skeleton import build  # noqa: E402

#: dataset.json fields that differ between runs by design (times, arguments, shards).
VOLATILE = ("converter", "created", "seconds", "args", "sources")


def _pss(pid: int) -> int:
    """Proportional set size in bytes (shared pages split among their users), or RSS
    where smaps_rollup is missing."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(pid: int) -> int:
    """Memory in bytes of ``pid`` and all its descendants, summed as PSS: forked workers
    share their parent's pages, which a sum of RSS would count once per process."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += _pss(current)
        stack.extend(children.get(current, []))
    return total


def run_measured(command: list[str]) -> dict[str, float]:
    """Run ``command``; wall seconds, CPU seconds of its whole process tree (user + system,
    steadier than wall time on a shared machine) and the peak RSS of the tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {err.decode()[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": cpu, "peak_rss_bytes": peak}


def subset(skeleton: Path, patients: list[str], out: Path) -> tuple[Path, Path, int]:
    """Hard-link trees of the first patients: (DICOM root, annotation root, files)."""
    dicom, notes = out / "Lung-PET-CT-Dx", out / "Annotation"
    if not out.is_dir():
        for patient in patients:
            shutil.copytree(skeleton / "Lung-PET-CT-Dx" / patient, dicom / patient,
                            copy_function=os.link)
            short = patient.removeprefix("Lung_Dx-")
            if (skeleton / "Annotation" / short).is_dir():
                shutil.copytree(skeleton / "Annotation" / short, notes / short,
                                copy_function=os.link)
        notes.mkdir(parents=True, exist_ok=True)
    files = sum(len(names) for _, _, names in os.walk(dicom))
    return dicom, notes, files


def convert_command(dicom: Path, notes: Path, out: Path, workers: int,
                    shard: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "detect.cli", "convert", str(dicom), str(notes), str(out),
               "--workers", str(workers)]
    return command + (["--shard", shard] if shard else [])


def dataset_digest(out: Path) -> dict[str, str]:
    """Content hashes of everything a dataset holds (dataset.json without volatile keys)."""
    digests = {}
    manifest = json.loads((out / "dataset.json").read_text())
    for key in VOLATILE:
        manifest.pop(key, None)
    digests["dataset.json"] = hashlib.sha256(
        json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    for folder in ("coco", "labels", "images"):
        for path in sorted((out / folder).rglob("*")):
            if path.is_file():
                digests[str(path.relative_to(out))] = hashlib.sha256(
                    path.read_bytes()).hexdigest()
    return digests


def scale_row(skeleton: Path, patients: list[str], work: Path, workers: int) -> dict[str, Any]:
    dicom, notes, files = subset(skeleton, patients, work / f"subset-{len(patients)}")
    out = work / f"dataset-{len(patients)}"
    shutil.rmtree(out, ignore_errors=True)
    drop_cache(dicom.parent)
    measured = run_measured(convert_command(dicom, notes, out, workers))
    cache = out / ".cache" / "dicom-index.json"
    manifest = json.loads((out / "dataset.json").read_text())
    return {"patients": len(patients), "files": files, **measured,
            "ms_per_file": 1000 * measured["seconds"] / files,
            "cpu_ms_per_file": 1000 * measured["cpu_seconds"] / files,
            "index_cache_bytes": cache.stat().st_size if cache.is_file() else 0,
            "images": sum(manifest.get("counts", {}).get(s, {}).get("images", 0)
                          for s in ("train", "val", "test"))}


def shard_check(skeleton: Path, patients: list[str], work: Path, workers: int,
                shard_counts: list[int]) -> list[dict[str, Any]]:
    dicom, notes, _ = subset(skeleton, patients, work / f"subset-{len(patients)}")
    whole = work / f"dataset-{len(patients)}"
    if not (whole / "dataset.json").is_file():
        run_measured(convert_command(dicom, notes, whole, workers))
    reference = dataset_digest(whole)
    rows = []
    for n in shard_counts:
        out = work / f"dataset-{len(patients)}-shards-{n}"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        for i in range(n):  # shards are numbered 0..N-1
            run_measured(convert_command(dicom, notes, out, workers, f"{i}/{n}"))
        digest = dataset_digest(out)
        differing = sorted(k for k in set(reference) | set(digest)
                           if reference.get(k) != digest.get(k))
        rows.append({"shards": n, "patients": len(patients), "identical": not differing,
                     "differing": differing[:10], "files_compared": len(reference),
                     "seconds": time.perf_counter() - start})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skeleton", type=Path,
                        default=Path(tempfile.gettempdir()) / "lpcd-skeleton")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--sizes", default="40,120,355")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shards", default="2,4")
    parser.add_argument("--shard-patients", type=int, default=355)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if not (args.skeleton / "skeleton.json").is_file():
        print(f"building the skeleton in {args.skeleton} ...", flush=True)
        build(args.skeleton, patients=max(max(sizes), args.shard_patients), size=64,
              workers=args.workers, modalities=["CT", "PT"])
    skeleton = json.loads((args.skeleton / "skeleton.json").read_text())
    everyone: list[str] = skeleton["patients_list"]
    work = args.work or Path(tempfile.mkdtemp(prefix="convert-scale-"))
    rows = []
    for size in sizes:
        row = scale_row(args.skeleton, everyone[:size], work, args.workers)
        rows.append(row)
        print(f"{row['patients']:>4} patients {row['files']:>7} files {row['seconds']:7.1f} s "
              f"{row['ms_per_file']:.3f} ms/file peak PSS {row['peak_rss_bytes'] / 2**20:.0f} MiB "
              f"cache {row['index_cache_bytes'] / 2**20:.1f} MiB", flush=True)
    shards = shard_check(args.skeleton, everyone[:args.shard_patients], work, args.workers,
                         [int(n) for n in args.shards.split(",") if n])
    for row in shards:
        print(f"--shard over {row['shards']}: identical={row['identical']} "
              f"({row['files_compared']} files compared, {row['seconds']:.0f} s)", flush=True)
    flat = max(r["ms_per_file"] for r in rows) / min(r["ms_per_file"] for r in rows) - 1
    cpu_flat = max(r["cpu_ms_per_file"] for r in rows) / min(r["cpu_ms_per_file"] for r in rows) - 1
    result = {"platform": {"python": platform.python_version(),
                           "processor": platform.processor() or platform.machine()},
              "skeleton": {k: v for k, v in skeleton.items() if k != "patients_list"},
              "workers": args.workers, "rows": rows, "shards": shards,
              "time_per_file_spread": flat, "cpu_per_file_spread": cpu_flat}
    table = ["| patients | files | wall s | ms per file | CPU ms per file | peak PSS (tree) "
             "| index cache |", "|---|---|---|---|---|---|---|"]
    table += [f"| {r['patients']} | {r['files']:,} | {r['seconds']:.1f} | "
              f"{r['ms_per_file']:.3f} | {r['cpu_ms_per_file']:.3f} | "
              f"{r['peak_rss_bytes'] / 2**20:.0f} MiB | "
              f"{r['index_cache_bytes'] / 2**20:.1f} MiB |" for r in rows]
    print("\n".join(table))
    print(f"time per file spread: {100 * flat:.1f} % wall, {100 * cpu_flat:.1f} % CPU "
          f"(goal <= 10 %)")
    if not args.no_record:
        text = (f"Skeleton of Lung-PET-CT-Dx from IDC's index ({skeleton['files']:,} files at "
                f"{skeleton['size_px']} px, {skeleton['xml']:,} XML); {args.workers} workers."
                "\n\n" + "\n".join(table) + "\n\n"
                f"Time per file spread {100 * flat:.1f} % wall, {100 * cpu_flat:.1f} % CPU "
                "(goal <= 10 %). Shards: "
                + ", ".join(f"{r['shards']} shards identical={r['identical']}" for r in shards))
        record("convert_scale", "convert at scale", text, result)
    return 0 if all(r["identical"] for r in shards) else 1


if __name__ == "__main__":
    sys.exit(main())
