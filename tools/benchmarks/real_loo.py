"""Benchmark on real CT: leave one patient out over the three shared Lung-PET-CT-Dx patients.

Real patients (``../shared/realdata``: A0002 Siemens 8 mm, B0021 and E0003 GE 5 mm), not
the phantom. For each fold, yolov8n is trained on two patients and scored on the third,
once from scratch (built from its YAML) and once fine-tuned from the shipped phantom
checkpoint (``weights/demo-yolov8n-phantom``, trained only on ``detect synth`` data), with
the protocol of ``tools/real_protocol.py`` (convert ``--classes tumor --split 1,0,0
--negatives K``, val = every 4th training image, fixed epochs, seed 0).

Metrics per fold, on the held-out patient, all from detect's evaluator
(:mod:`detect.eval.series`, which calls :mod:`detect.eval.coco` and
:mod:`detect.eval.froc`):

- tumour AP50 on the annotated slices (pycocotools; AP at IoU 0.1 in the JSON);
- FROC sensitivity at 1 and 8 false positives per series, IoU 0.1, with EVERY slice of
  EVERY CT series of the patient predicted (``detect predict`` on its DICOM folder,
  ``--conf 0.001``) and scored against the archive's VOC boxes. Unannotated slices next to
  annotated ones: a detection on an unannotated slice within 2 slices (same series) of an
  annotated slice that overlaps that slice's box (IoU >= 0.1) is ignored (the archive
  leaves the tumour's first and last slices unboxed); every other detection off the
  annotated slices is a false positive. ``sens@8 strict`` counts those ignored ones as
  false positives too;
- AP50 over every slice (unannotated slices' detections count as false positives);
- patient found: a box of the patient hit at the model's shipped threshold (conf 0.25).

Three patients are three folds: each figure is one patient, with no confidence interval
worth the name. Prints a table, writes tools/benchmarks/results/real_loo.json and appends
to RESULTS.md.

usage (default, about 60 min on 2 idle CPU cores: 6 trainings of ~8 min + prediction on
496 slices per init):
    nice -n 10 python tools/benchmarks/real_loo.py
the shipped model's recipe (weights/real-yolov8n; its fold A0002 is that model), phantom
init only (the three trainings took 6-11 min each on 2 cores):
    nice -n 10 python tools/benchmarks/real_loo.py --imgsz 384 --inits phantom --nbs 16 \
        --optimizer AdamW --lr0 0.004 --tag i384-nbs16-lr4
the previous shipped recipe (ultralytics' nbs 64 and auto optimizer; 12-19 min per fold):
    nice -n 10 python tools/benchmarks/real_loo.py --imgsz 384 --inits phantom --tag i384
full size (more epochs, 512 px, more negatives; not run here: estimated 3-4 h on 2 cores,
minutes on a GPU):
    python tools/benchmarks/real_loo.py --epochs 100 --imgsz 512 --negatives 40 --tag full
smoke test (CPU, ~3 min):
    python tools/benchmarks/real_loo.py --epochs 1 --imgsz 128 --folds E0003 --inits scratch \
        --no-save
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from record import arguments, record

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tools/real_protocol.py

from real_protocol import (  # noqa: E402
    PATIENTS,
    PHANTOM_WEIGHTS,
    REALDATA,
    Recipe,
    convert_real,
    score_patient,
    stage,
    train_real,
)

INITS = ("scratch", "phantom")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=REALDATA)
    parser.add_argument("--folds", default=",".join(PATIENTS),
                        help="held-out patients, comma-separated")
    parser.add_argument("--inits", default=",".join(INITS), help="scratch, phantom or both")
    parser.add_argument("--pretrained", type=Path, default=PHANTOM_WEIGHTS,
                        help="phantom checkpoint for --inits phantom")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--imgsz", type=int, default=256)
    parser.add_argument("--negatives", type=int, default=10, help="unannotated slices/patient")
    parser.add_argument("--channels", default="lung,mediastinum,wide")
    parser.add_argument("--nbs", type=int, default=None,
                        help="YOLO nominal batch (default: ultralytics' 64; 16 = a step per batch)")
    parser.add_argument("--optimizer", default="auto")
    parser.add_argument("--lr0", type=float, default=None)
    parser.add_argument("--mosaic", type=float, default=None)
    parser.add_argument("--near-slices", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the work folder here (finished runs are reused)")
    parser.add_argument("--no-save", action="store_true", help="print only (smoke runs)")
    parser.add_argument("--tag", default="", help="results/real_loo-TAG.json (other recipes)")
    return parser


def run_fold(args: argparse.Namespace, held_out: str, init: str, work: Path
             ) -> dict[str, Any]:
    train_patients = [p for p in PATIENTS if p != held_out]
    recipe = Recipe(epochs=args.epochs, imgsz=args.imgsz, negatives=args.negatives,
                    channels=args.channels, nbs=args.nbs, optimizer=args.optimizer,
                    lr0=args.lr0, mosaic=args.mosaic,
                    pretrained=args.pretrained if init == "phantom" else None)
    fold = work / f"without-{held_out}"
    dicom, annotation = stage(args.realdata, train_patients, fold / "data")
    channels = args.channels.replace(",", "-").replace(":", "_")
    dataset = fold / f"dataset-n{args.negatives}-{channels}"
    if not (dataset / "dataset.json").is_file():
        convert_real(dicom, annotation, dataset, recipe, workers=args.workers)
    name = f"{init}-e{args.epochs}-i{args.imgsz}-n{args.negatives}-{channels}"
    for option in ("nbs", "lr0", "mosaic"):  # --keep never reuses another recipe's run
        name += f"-{option}{getattr(args, option)}" if getattr(args, option) is not None else ""
    run = fold / "runs" / "yolov8" / name
    if not _complete(run):  # --keep: a finished run with the same recipe is reused
        shutil.rmtree(run, ignore_errors=True)
        run = train_real(dataset, recipe, fold / "runs", name, workers=args.workers)
    model = json.loads((run / "model.json").read_text())
    train_s = (datetime.fromisoformat(model["finished"])
               - datetime.fromisoformat(model["created"])).total_seconds()
    shutil.rmtree(fold / f"predict-{name}", ignore_errors=True)  # ours, from an earlier run
    scores = score_patient(run, args.realdata, held_out, fold / f"predict-{name}",
                           near_slices=(args.near_slices, 0))
    score, strict = scores[args.near_slices], scores[0]
    return {
        "held_out": held_out, "train": train_patients, "init": init,
        "recipe": recipe.describe(), "train_s": round(train_s, 1),
        "ap50_annotated": score.ap50_annotated, "ap10_annotated": score.ap10_annotated,
        "ap50_all_slices": score.ap50_all_slices,
        "sens_at_1": score.sensitivity_at(1.0), "sens_at_8": score.sensitivity_at(8.0),
        "sens_at_8_strict": strict.sensitivity_at(8.0),
        "found": bool(score.patients_found.get(held_out, False)),
        "score": score.to_dict(),
    }


def _complete(run: Path) -> bool:
    try:
        return json.loads((run / "model.json").read_text()).get("status") == "complete"
    except (OSError, json.JSONDecodeError):
        return False


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    lines = [
        f"real CT, leave one patient out ({', '.join(PATIENTS)}); yolov8n, --classes tumor, "
        f"{args.channels}, negatives {args.negatives}/patient, {args.epochs} epochs, imgsz "
        f"{args.imgsz}, batch 16, nbs {args.nbs or 64}, optimizer {args.optimizer}, lr0 "
        f"{args.lr0 or 'auto'}, mosaic {'1.0' if args.mosaic is None else args.mosaic}, "
        f"seed 0, CPU; FROC IoU 0.1, near-annotation rule "
        f"{args.near_slices} slices; found at conf 0.25",
        "| held out | trained on | init | AP50 annotated | AP@0.1 annotated | AP50 all slices "
        "| sens@1 FP/series | sens@8 FP/series | sens@8 strict | found | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['held_out']} | {'+'.join(row['train'])} | {row['init']} | "
            f"{_fmt(row['ap50_annotated'])} | {_fmt(row['ap10_annotated'])} | "
            f"{_fmt(row['ap50_all_slices'])} | {_fmt(row['sens_at_1'])} | "
            f"{_fmt(row['sens_at_8'])} | {_fmt(row['sens_at_8_strict'])} | "
            f"{'yes' if row['found'] else 'no'} | {row['train_s']:.0f} |")
    for init in dict.fromkeys(r["init"] for r in rows):
        mine = [r for r in rows if r["init"] == init]
        mean = {k: sum(r[k] or 0.0 for r in mine) / len(mine)
                for k in ("ap50_annotated", "sens_at_1", "sens_at_8")}
        lines.append(
            f"| mean of {len(mine)} | | {init} | {_fmt(mean['ap50_annotated'])} | | | "
            f"{_fmt(mean['sens_at_1'])} | {_fmt(mean['sens_at_8'])} | | "
            f"{sum(r['found'] for r in mine)}/{len(mine)} | |")
    text = "\n".join(lines)
    print(text)
    if args.no_save:
        return
    name = f"real_loo-{args.tag}" if args.tag else "real_loo"
    result = {"data": "real (Lung-PET-CT-Dx, 3 patients)", "args": arguments(args),
              "rows": rows}
    record(name, name, text, result, device="cpu")


def main(argv: list[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    folds = [f.strip() for f in args.folds.split(",") if f.strip()]
    inits = [i.strip() for i in args.inits.split(",") if i.strip()]
    if set(folds) - set(PATIENTS) or set(inits) - set(INITS):
        raise SystemExit(f"--folds from {PATIENTS}, --inits from {INITS}")
    if "phantom" in inits and not args.pretrained.is_file():
        raise SystemExit(f"--pretrained {args.pretrained} not found")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-real-loo-"))
    rows = []
    try:
        for held_out in folds:
            for init in inits:
                rows.append(run_fold(args, held_out, init, work))
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "score"}),
                      flush=True)
        report(args, rows)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
