"""Benchmark the lung field and lesion linking: their share of ``detect predict``'s time
per slice (goal: at most 10 %).

Sources: the repository's real sample (``datasets/lung-pet-ct-dx/sample``: 30 slices of
A0002, 512 px, 8 mm) and, with ``--realdata``, every CT series of the three shared real
patients (``../shared/realdata``: 496 slices more, GE series of 53-168 slices). Model:
``weights/real-yolov8n`` (``--weights``). Measured in this process, each the best of
``--repeats``:

- ``predict off`` / ``predict on``: :func:`detect.predict.run.predict` (the library call
  of ``detect predict``: header scan, decode, render, model, lung field, linking,
  writers; the model loaded in each call) with ``lung_field=None`` and with the default
  rule, seconds per slice, and their difference;
- the parts alone, on the same slices: ``air`` (each slice's air inside the body from its
  HU, :func:`detect.lung.air_inside_body`; HU decoding left out: predict decodes each
  slice for the model anyway), ``3d`` (:func:`detect.lung.build_lung_field` per series),
  ``link`` (:func:`detect.lesions.link_series` on the boxes predict found), in ms per
  slice; ``share`` = (air + 3d + link) / ``predict off`` per slice.

At ``--conf`` (default: the model's operating point, model.json ``thresholds.conf``) and
at 0.001 (FROC scoring: many more boxes to link). Prints a table, writes
tools/benchmarks/results/lung_lesions.json and appends to RESULTS.md.

usage:  python tools/benchmarks/lung_lesions.py [--realdata] [--repeats 3]
smoke:  python tools/benchmarks/lung_lesions.py --repeats 1 --no-record
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from record import arguments, record

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SAMPLE = ROOT / "datasets" / "lung-pet-ct-dx" / "sample" / "Lung-PET-CT-Dx"
REALDATA = ROOT.parent / "shared" / "realdata"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--weights", type=Path, default=ROOT / "weights" / "real-yolov8n")
    parser.add_argument("--realdata", action="store_true",
                        help="also every CT series of ../shared/realdata")
    parser.add_argument("--conf", type=float, default=None,
                        help="default: the model's operating point (thresholds.conf)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--no-record", action="store_true", help="print only")
    return parser


def sources(args: argparse.Namespace) -> dict[str, list[Path]]:
    found = {"sample": [SAMPLE]}
    if args.realdata:
        folders = sorted(REALDATA.glob("lung-pet-ct-dx-*/Lung-PET-CT-Dx"))
        if not folders:
            raise SystemExit(f"--realdata: no patients under {REALDATA}")
        found["realdata"] = folders
    return found


def predict_seconds(folders: list[Path], weights: Path, out: Path, conf: float, *,
                    lung: bool, batch: int) -> tuple[float, int]:
    from detect.predict.config import PredictConfig
    from detect.predict.run import predict

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    summary = predict(PredictConfig(
        sources=tuple(folders), weights=weights, out=out, conf=conf, save=("json",),
        device="cpu", batch=batch, workers=1, lung_field="on" if lung else "off"))
    return time.perf_counter() - start, summary.slices


def part_seconds(folders: list[Path], out: Path) -> dict[str, float]:
    """air, 3d and link, in seconds over every slice, from predict's own output in out."""
    import numpy as np

    from detect.io.dicom import read_hu
    from detect.io.geometry import series_geometry
    from detect.lesions import LinkRule, SliceBox, link_series
    from detect.lung import (
        LungFieldRule,
        air_inside_body,
        block_size,
        build_lung_field,
        pixel_size,
    )
    from detect.predict.sources import scan_sources

    rule, link = LungFieldRule(), LinkRule()
    boxes: dict[str, list[dict[str, Any]]] = {}
    for record_ in json.loads((out / "predictions.json").read_text()):
        boxes.setdefault(record_["series_instance_uid"], []).append(record_)
    seconds = {"air": 0.0, "3d": 0.0, "link": 0.0}
    for series in scan_sources(folders).series:
        geometry = series_geometry(series.slices)
        pixel_mm = pixel_size(geometry.pixel_mm)
        block = block_size(pixel_mm, rule.grid_mm)
        hu = [read_hu(h.path) for h in series.slices]
        start = time.perf_counter()
        air: list[np.ndarray | None] = [
            air_inside_body(one, air_hu=rule.air_hu, block=block) for one in hu]
        seconds["air"] += time.perf_counter() - start
        start = time.perf_counter()
        build_lung_field(air, pixel_mm=pixel_mm, block=block,
                         positions_mm=geometry.positions_mm, rule=rule)
        seconds["3d"] += time.perf_counter() - start
        index = {h.sop_instance_uid: i for i, h in enumerate(series.slices)}
        mine = [SliceBox(r["sop_instance_uid"], index[r["sop_instance_uid"]],
                         tuple(r["xyxy"]), r["score"]) for r in boxes.get(series.uid, [])]
        start = time.perf_counter()
        link_series(mine, geometry, link)
        seconds["link"] += time.perf_counter() - start
    return seconds


def measure(args: argparse.Namespace, name: str, folders: list[Path], conf: float,
            work: Path) -> dict[str, Any]:
    off = on = float("inf")
    slices = 0
    for _ in range(args.repeats):  # interleaved, so a busy moment hits both
        seconds, slices = predict_seconds(folders, args.weights, work / "off", conf,
                                          lung=False, batch=args.batch)
        off = min(off, seconds)
        seconds, _ = predict_seconds(folders, args.weights, work / "on", conf, lung=True,
                                     batch=args.batch)
        on = min(on, seconds)
    parts = {k: float("inf") for k in ("air", "3d", "link")}
    for _ in range(args.repeats):
        for key, value in part_seconds(folders, work / "on").items():
            parts[key] = min(parts[key], value)
    boxes = len(json.loads((work / "on" / "predictions.json").read_text()))
    per_slice = {k: 1000.0 * v / slices for k, v in parts.items()}
    return {
        "sources": name, "conf": conf, "slices": slices, "boxes": boxes,
        "predict_off_ms": 1000.0 * off / slices, "predict_on_ms": 1000.0 * on / slices,
        **{f"{k}_ms": v for k, v in per_slice.items()},
        "share": sum(per_slice.values()) / (1000.0 * off / slices),
        "end_to_end_share": (on - off) / off,
    }


def report(args: argparse.Namespace, rows: list[dict[str, Any]],
           load: tuple[float, float]) -> None:
    lines = [
        f"detect predict with {args.weights.name} on CPU, workers 1, batch {args.batch}, "
        f"best of {args.repeats}; ms per slice; load average {load[0]:.1f} at the start, "
        f"{load[1]:.1f} at the end",
        "| sources | conf | slices | boxes | predict off | predict on | air | 3d | link "
        "| share (parts) | share (on - off) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['sources']} | {r['conf']:.3g} | {r['slices']} | {r['boxes']} | "
            f"{r['predict_off_ms']:.1f} | {r['predict_on_ms']:.1f} | {r['air_ms']:.2f} | "
            f"{r['3d_ms']:.2f} | {r['link_ms']:.2f} | {100 * r['share']:.1f} % | "
            f"{100 * r['end_to_end_share']:+.1f} % |")
    lines += ["", "share (parts) = (air + 3d + link) / predict off; goal <= 10 %. "
              "share (on - off) is the end-to-end difference, within run-to-run noise "
              "on a shared machine."]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        record("lung_lesions", "lung field and lesion linking in predict", text,
               {"args": arguments(args), "load_average": list(load), "rows": rows},
               device="cpu")


def main(argv: list[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    if args.conf is None:  # the model's own threshold, as predict uses it without --conf
        from detect.runs.manifest import read_model_json

        args.conf = read_model_json(args.weights).conf
    work = Path(tempfile.mkdtemp(prefix="bench-lung-"))
    try:
        start = os.getloadavg()[0]
        rows = [measure(args, name, folders, conf, work)
                for name, folders in sources(args).items()
                for conf in dict.fromkeys((args.conf, 0.001))]
        report(args, rows, (start, os.getloadavg()[0]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
