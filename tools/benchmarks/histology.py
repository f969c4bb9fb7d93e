"""Benchmark histology: a 4-class detector's own letters vs. a tumour detector + the
histology head, patient-level balanced accuracy with 95% bootstrap CIs.

On one phantom cohort with every letter equally common (``--letter-mix A=1,B=1,E=1,G=1``;
the phantom's histologies differ in place and look), converted twice with the same seed
and split (``--classes histology`` and ``--classes tumor``; same patients in each split):

- ``yolo4``: ``detect train --model yolov8`` on the histology dataset; its letters.
- ``tumor+head``: ``detect train --model yolov8`` on the tumour dataset, plus
  ``detect train --model histology`` (the head, trained on the tumour dataset's boxes);
  the head's probabilities on the tumour detector's boxes.
- ``yolo4+head``: the same head on the 4-class detector's boxes (same boxes as ``yolo4``,
  other classifier).
- ``gt+head``: the head on the ground-truth boxes (score 1): the classifier alone, an
  upper bound for what better boxes could give it.

Everything is scored on the test split by detect's evaluator (``predict_split`` +
``evaluate_predictions``, the code of ``detect eval --weights W [--histology H]``): a
patient's call aggregates its detections with score >= ``--conf``; patients without one
are not scored (the table says how many were). The split is 0.6/0.2/0.2 by default, so
that val and test hold two or more patients of every letter.
Prints a table, writes tools/benchmarks/results/histology.json and appends to RESULTS.md.

usage (full size; on 2 shared CPU cores about 20 minutes: yolov8n ~9 s per epoch x 50
epochs x 2 detectors, the head ~1.8 s per epoch x 30, synth + convert + scoring < 1 min):
    python tools/benchmarks/histology.py --patients 40 --slices 24 --size 192 --epochs 50 \
        --head-epochs 30
smoke test (CPU, under 2 minutes):
    python tools/benchmarks/histology.py --patients 12 --slices 10 --size 96 --epochs 1 \
        --head-epochs 1 --crop 32 --bootstrap 50 --no-record
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from record import arguments, record

HERE = Path(__file__).resolve().parent
MIX = {"A": 1, "B": 1, "E": 1, "G": 1}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--slices", type=int, default=24)
    parser.add_argument("--size", type=int, default=192, help="phantom slice size, px")
    parser.add_argument("--negatives", type=int, default=2, help="unannotated slices/patient")
    parser.add_argument("--split", default="0.6,0.2,0.2")
    parser.add_argument("--epochs", type=int, default=50, help="YOLO epochs (each detector)")
    parser.add_argument("--head-epochs", type=int, default=30)
    parser.add_argument("--crop", type=int, default=64, help="head crop size, px")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--conf", type=float, default=0.25, help="operating score threshold")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep the work folder")
    parser.add_argument("--no-record", action="store_true",
                        help="print only; do not write results/ or RESULTS.md")
    return parser


def make_datasets(args: argparse.Namespace, work: Path) -> dict[str, Path]:
    """The cohort, converted with --classes histology and tumor (same seed, same split)."""
    from detect.convert import convert
    from detect.convert.config import ConvertConfig, parse_fractions
    from detect.synth.cohort import SynthConfig, synthesize

    cohort = work / "cohort"
    if not (cohort / "Annotation").is_dir():
        synthesize(cohort, SynthConfig(patients=args.patients, slices=args.slices,
                                       size=args.size, seed=args.seed, fused=False,
                                       letter_mix=MIX))
    out = {}
    for mode in ("histology", "tumor"):
        out[mode] = work / f"dataset-{mode}"
        if not (out[mode] / "dataset.json").is_file():
            convert(ConvertConfig(cohort / "Lung-PET-CT-Dx", cohort / "Annotation", out[mode],
                                  class_mode=mode, split=parse_fractions(args.split),
                                  seed=args.seed, negatives=args.negatives,
                                  workers=args.workers))
    splits = [json.loads((p / "dataset.json").read_text())["splits"] for p in out.values()]
    if splits[0] != splits[1]:
        raise SystemExit("the two conversions split the patients differently; cannot compare")
    return out


def train_all(args: argparse.Namespace, data: dict[str, Path], work: Path
              ) -> dict[str, dict[str, Any]]:
    """Train the two detectors and the head (kept with --keep: finished runs are reused)."""
    from detect.train import TrainConfig, train

    jobs = {
        "yolo4": TrainConfig(model="yolov8", data=data["histology"], epochs=args.epochs,
                             imgsz=args.size, batch=args.batch),
        "tumor": TrainConfig(model="yolov8", data=data["tumor"], epochs=args.epochs,
                             imgsz=args.size, batch=args.batch),
        "head": TrainConfig(model="histology", data=data["tumor"], epochs=args.head_epochs,
                            imgsz=args.crop, batch=32),
    }
    runs: dict[str, dict[str, Any]] = {}
    for name, config in jobs.items():
        run = work / "runs" / config.model / name
        model_json = run / "model.json"
        if model_json.is_file() and json.loads(model_json.read_text())["status"] == "complete":
            runs[name] = {"run": run, "seconds": None}
            continue
        shutil.rmtree(run, ignore_errors=True)
        started = time.perf_counter()
        train(replace(config, project=work / "runs", name=name, device=args.device,
                      workers=args.workers, seed=args.seed))
        runs[name] = {"run": run, "seconds": time.perf_counter() - started}
    return runs


def gt_with_head(dataset: Any, head_run: Path, device: str) -> list[Any]:
    """Ground-truth boxes of the test split (score 1) with the head's probabilities."""
    from detect.boxes import coco_to_xyxy
    from detect.models.histology.data import read_rgb
    from detect.predict.histology import load_head, with_head
    from detect.predictions import Prediction

    head = load_head(head_run, device)
    coco = dataset.load_coco("test")
    by_image: dict[int, list[Any]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(int(ann["image_id"]), []).append(ann)
    out: list[Any] = []
    for image in coco["images"]:
        records = [Prediction(str(image["sop_instance_uid"]), str(image["series_instance_uid"]),
                              str(image["patient_id"]), coco_to_xyxy(a["bbox"]), 1.0,
                              dataset.classes[0], 1, None, int(image["id"]))
                   for a in by_image.get(int(image["id"]), [])]
        out.extend(with_head(records, read_rgb(dataset.root / image["file_name"]), head))
    return out


def _row(result: Any, source: str) -> dict[str, Any]:
    section = result.histology.get(source) or {}
    ci = result.ci["metrics"].get(f"patient_balanced_accuracy_{source}") or {}
    patient = section.get("patient") or {}
    return {
        "source": source, "available": bool(section.get("available")),
        "patients_scored": (patient.get("covered") or {}).get("scored"),
        "patients_total": (patient.get("covered") or {}).get("total"),
        "patient_balanced_accuracy": patient.get("balanced_accuracy"),
        "ci_low": ci.get("low"), "ci_high": ci.get("high"),
        "patient_macro_f1": patient.get("macro_f1"),
        "slice_balanced_accuracy": (section.get("slice") or {}).get("balanced_accuracy"),
        "confusion": (patient.get("confusion") or {}).get("matrix"),
        "mAP50": result.map50, "patient_sensitivity": result.patient_sensitivity,
    }


def score_all(args: argparse.Namespace, data: dict[str, Path], runs: dict[str, dict[str, Any]]
              ) -> dict[str, dict[str, Any]]:
    from detect.dataset import load_dataset
    from detect.eval import evaluate_predictions
    from detect.predict.split import predict_split

    histology, tumor = load_dataset(data["histology"]), load_dataset(data["tumor"])
    head = runs["head"]["run"]
    cases = {
        "yolo4": (histology, "detector",
                  lambda: predict_split(runs["yolo4"]["run"], histology, "test", args.device)),
        "tumor+head": (tumor, "head", lambda: predict_split(
            runs["tumor"]["run"], tumor, "test", args.device, histology=head)),
        "yolo4+head": (histology, "head", lambda: predict_split(
            runs["yolo4"]["run"], histology, "test", args.device, histology=head)),
        "gt+head": (tumor, "head", lambda: gt_with_head(tumor, head, args.device)),
    }
    rows = {}
    for name, (dataset, source, make) in cases.items():
        result = evaluate_predictions(dataset, "test", make(), bootstrap=args.bootstrap,
                                      seed=args.seed, conf=args.conf)
        rows[name] = _row(result, source)
    return rows


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def report(args: argparse.Namespace, rows: dict[str, dict[str, Any]],
           runs: dict[str, dict[str, Any]], data: dict[str, Path], seconds: float) -> None:
    manifest = json.loads((data["histology"] / "dataset.json").read_text())
    per_letter = {s: {k: v["patients"] for k, v in c["by_letter"].items()}
                  for s, c in manifest["counts"].items()}
    lines = [
        f"cohort: {args.patients} patients x {args.slices} slices at {args.size} px, letters "
        f"1:1:1:1, split {args.split} (patients {per_letter}); yolov8n {args.epochs} epochs at "
        f"{args.size} px; head resnet18 {args.head_epochs} epochs, {args.crop} px crops; "
        f"conf {args.conf}; {args.bootstrap} bootstrap replicates; total {seconds / 60:.1f} min",
        "| boxes + letters | test patients scored | patient bal. acc. | 95% CI | patient "
        "macro-F1 | slice bal. acc. | detector mAP50 | patient sensitivity |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        ci = f"{_fmt(row['ci_low'])}-{_fmt(row['ci_high'])}"
        lines.append(
            f"| {name} | {row['patients_scored']}/{row['patients_total']} | "
            f"{_fmt(row['patient_balanced_accuracy'])} | {ci} | {_fmt(row['patient_macro_f1'])} "
            f"| {_fmt(row['slice_balanced_accuracy'])} | {_fmt(row['mAP50'])} | "
            f"{_fmt(row['patient_sensitivity'])} |"
        )
    times = ", ".join(f"{k} {_fmt(v['seconds'])} s" for k, v in runs.items())
    lines.append(f"\ntraining time: {times}")
    text = "\n".join(lines)
    print(text)
    if args.no_record:
        return
    result = {"seconds": seconds, "args": arguments(args), "rows": rows,
              "train_seconds": {k: v["seconds"] for k, v in runs.items()},
              "patients_per_letter": per_letter}
    record("histology", "histology: detector letters vs. histology head", text, result)


def main(argv: list[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-histology-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        data = make_datasets(args, work)
        runs = train_all(args, data, work)
        rows = score_all(args, data, runs)
        report(args, rows, runs, data, time.perf_counter() - started)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
