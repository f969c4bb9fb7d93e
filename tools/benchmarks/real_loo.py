"""Benchmark on real CT: leave one patient out over the three shared Lung-PET-CT-Dx patients.

Real patients (``../shared/realdata``: A0002 Siemens 8 mm, B0021 and E0003 GE 5 mm), not
the phantom. Each fold trains yolov8n on two patients with one recipe
(``tools/real_protocol.py``: convert ``--classes tumor --split 1,0,0``, val = every 4th
training image, fixed epochs, seed 0, fine-tuned from the phantom checkpoint) and scores
the third over every slice of every CT series. The operating threshold is chosen on the
same-vendor folds (B0021, E0003 held out) and A0002, the only patient whose scanner no
training patient shares, is predicted last, once (``tools/real_folds.py``).

Figures per held-out patient, all from detect's evaluator (:mod:`detect.eval.series`):

- tumour AP50 on the annotated slices (pycocotools; AP at IoU 0.1 in the JSON), AP50 over
  every slice;
- slice FROC: sensitivity at 1/8 ... 8 false positive boxes per series, IoU 0.1; a
  detection on an unannotated slice within 2 slices of an annotated one that overlaps its
  box is ignored (the archive leaves the tumour's first and last slices unboxed);
  ``sens@8 strict`` counts those as false positives;
- lesion FROC: boxes linked into 3D lesions (the model's linking rule), sensitivity at
  1/8 ... 8 false-positive lesions per series; lesion sensitivity at <= 2;
- found: a true lesion hit at the operating threshold (and ``slice found``: a box hit).

Three patients are three folds: each figure is one patient, with no confidence interval
worth the name. Prints a table, writes tools/benchmarks/results/real_loo-TAG.json and
appends to RESULTS.md.

usage (real_protocol.SHIPPED, the recipe of weights/real-yolov8n: each training took
1708-1838 s on 2 shared CPU cores, RESULTS.md real_loo-shipped; --previous-run also scores
another checkpoint on A0002):
    python tools/benchmarks/real_loo.py --recipe shipped --keep WORK --tag shipped \\
        --previous-run weights/real-yolov8n
the previous recipe (its A0002 fold was the weights/real-yolov8n of 2026-12-01 to 12-07):
    python tools/benchmarks/real_loo.py --recipe previous --tag previous
smoke test (CPU, ~15 min under load): one same-vendor fold, tiny
    python tools/benchmarks/real_loo.py --epochs 1 --imgsz 128 --folds E0003 --no-save
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from record import arguments, record

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tools/real_protocol.py, tools/real_folds.py

from real_folds import CROSS_VENDOR, leave_one_out, score_model  # noqa: E402
from real_protocol import PATIENTS, PREVIOUS, REALDATA, SHIPPED, Recipe  # noqa: E402

RECIPES = {"shipped": SHIPPED, "previous": PREVIOUS}
#: Recipe fields a flag may override (None: the recipe's).
OVERRIDES = ("epochs", "imgsz", "negatives", "negatives_from", "channels", "hu_jitter", "nbs",
             "optimizer", "lr0", "mosaic", "pretrained")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=REALDATA)
    parser.add_argument("--recipe", choices=RECIPES, default="shipped")
    parser.add_argument("--folds", default=",".join(PATIENTS),
                        help="held-out patients, comma-separated")
    parser.add_argument("--init", choices=("phantom", "scratch"), default="phantom")
    parser.add_argument("--pretrained", type=Path, default=None,
                        help="phantom checkpoint (default: the recipe's)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--imgsz", type=int)
    parser.add_argument("--negatives", type=int, help="unannotated slices per patient")
    parser.add_argument("--negatives-from", choices=("series", "lungs"))
    parser.add_argument("--channels")
    parser.add_argument("--hu-jitter", help="detect convert --hu-jitter")
    parser.add_argument("--nbs", type=int)
    parser.add_argument("--optimizer")
    parser.add_argument("--lr0", type=float)
    parser.add_argument("--mosaic", type=float)
    parser.add_argument("--target", default="sensitivity@2fp", help="operating point target")
    parser.add_argument("--previous-run", type=Path, default=None,
                        help="also score this finished model on A0002 (its own threshold; "
                             "lung field as it ships and on)")
    parser.add_argument("--near-slices", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the work folder here (finished runs are reused)")
    parser.add_argument("--no-save", action="store_true", help="print only (smoke runs)")
    parser.add_argument("--tag", default="", help="results/real_loo-TAG.json")
    return parser


def recipe_of(args: argparse.Namespace) -> Recipe:
    given = {k: getattr(args, k) for k in OVERRIDES if getattr(args, k) is not None}
    recipe = dataclasses.replace(RECIPES[args.recipe], **given)
    return dataclasses.replace(recipe, pretrained=None) if args.init == "scratch" else recipe


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _curve(values: dict[str, Any]) -> str:
    return " / ".join("n/a" if v is None else f"{v:.2f}" for v in values.values())


def table(rows: list[dict[str, Any]], recipe: Recipe, point: dict[str, Any]) -> str:
    lines = [
        f"real CT, leave one patient out ({', '.join(PATIENTS)}); yolov8n, {recipe.describe()}"
        f", seed 0, CPU. IoU 0.1; near-annotation rule 2 slices. FROC at 1/8, 1/4, 1/2, 1, 2, "
        f"4, 8 false positives (boxes, resp. lesions) per series. Operating point "
        f"{point.get('target', 'each model its own')}: conf "
        f"{_fmt(point.get('conf'))}, chosen on {point.get('split', 'n/a')}.",
        "| held out | trained on | AP50 annotated | AP50 all slices | slice FROC | sens@8 strict "
        "| lesion FROC | lesion sens@2 | conf | lesions found at conf | FP lesions/series at "
        "conf | found | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['held_out']} | {'+'.join(row['train']) or row.get('model', '')} | "
            f"{_fmt(row['ap50_annotated'])} | {_fmt(row['ap50_all_slices'])} | "
            f"{_curve(row['slice_sensitivity'])} | {_fmt(row['sens_at_8_strict'])} | "
            f"{_curve(row['lesion_sensitivity'])} | {_fmt(row['lesion_sens_at_2'])} | "
            f"{row['conf']:.3f} | {row['lesions_found_at_conf']}/{row['lesions']} | "
            f"{row['fp_lesions_at_conf_per_series']:.2f} | {'yes' if row['found'] else 'no'} | "
            f"{'' if row['train_s'] is None else round(row['train_s'])} |")
    folds = [r for r in rows if r["train"]]
    if folds:
        mean = {k: sum(r[k] or 0.0 for r in folds) / len(folds)
                for k in ("ap50_annotated", "sens_at_8", "lesion_sens_at_2")}
        lines.append(f"| mean of {len(folds)} folds | | {_fmt(mean['ap50_annotated'])} | | "
                     f"sens@8 {_fmt(mean['sens_at_8'])} | | | "
                     f"{_fmt(mean['lesion_sens_at_2'])} | | | | "
                     f"{sum(r['found'] for r in folds)}/{len(folds)} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    folds = [f.strip() for f in args.folds.split(",") if f.strip()]
    if set(folds) - set(PATIENTS):
        raise SystemExit(f"--folds from {PATIENTS}")
    recipe = recipe_of(args)
    if recipe.pretrained is not None and not recipe.pretrained.is_file():
        raise SystemExit(f"--pretrained {recipe.pretrained} not found")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-real-loo-"))
    try:
        _, point, rows = leave_one_out(recipe, work, args.realdata, folds=folds,
                                       target=args.target, init=args.init,
                                       workers=args.workers, near_slices=args.near_slices)
        if args.previous_run is not None:
            for lung_field in ("model", "on"):
                row = score_model(args.previous_run, args.realdata, CROSS_VENDOR,
                                  work / f"previous-{CROSS_VENDOR}-lung-{lung_field}",
                                  lung_field=lung_field, near_slices=args.near_slices)
                row["model"] = f"previous model, lung field {lung_field}"
                rows.append(row)
        text = table(rows, recipe, point)
        print(text)
        if not args.no_save:
            name = f"real_loo-{args.tag}" if args.tag else "real_loo"
            record(name, name, text, {"data": "real (Lung-PET-CT-Dx, 3 patients)",
                                      "args": arguments(args), "recipe": recipe.describe(),
                                      "operating_point": point, "rows": rows}, device="cpu")
        else:
            print(json.dumps(point))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
