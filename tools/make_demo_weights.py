"""Rebuild the two shipped checkpoints with their recorded commands.

- ``weights/demo-yolov8n-phantom``: ``detect demo --out WORK/demo --patients 40 --slices 48
  --size 256 --epochs 60 --hyp ultralytics --seed 0 --no-real`` (phantom only), its run
  folder packed.
- ``weights/real-yolov8n``: real CT, trained only on B0021 and E0003 of
  ``../shared/realdata`` (never A0002) with ``tools/real_protocol.py``'s protocol and
  :data:`real_protocol.SHIPPED` (fine-tuned from the phantom checkpoint above; the
  checkpoint in the repository since 2026-12-07, see its card). Its
  operating threshold needs the two other leave-one-out folds (``tools/real_folds.py``:
  chosen on B0021 and E0003, each predicted by the fold that holds it out), so all three
  folds are trained; then A0002 (every slice of both CT series) is predicted and scored,
  once, into ``scores.json`` beside the model. The equivalent shell commands are printed
  first, and are in ``weights/real-yolov8n/CARD.md``.

Packing keeps ``model.json`` (``weights.last`` pointed at best.pt, temporary paths written
as ``<work>``), ``weights/best.pt`` and ``metrics.csv``; nothing else of the run.

usage: python tools/make_demo_weights.py [--which phantom,real] [--realdata DIR]
       [--work DIR] [--dry-run] [--pack RUN --scores REAL_LOO_JSON]
``--pack`` packs a finished fold-A0002 run of ``tools/benchmarks/real_loo.py --recipe
shipped`` and takes A0002's figures from its results JSON, so A0002 is not predicted a
second time. (On 2 CPU cores: phantom ~6 min idle; real: three trainings; the previous
recipe's took 351-632 s each, this one's 1708-1838 s each with one thread beside other
trainings, tools/benchmarks/RESULTS.md real_loo-shipped-budget.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/real_protocol.py

from real_folds import CROSS_VENDOR, leave_one_out
from real_protocol import REALDATA, REPO, SHIPPED, Recipe

PHANTOM_DIR = REPO / "weights" / "demo-yolov8n-phantom"
REAL_DIR = REPO / "weights" / "real-yolov8n"
REAL_TRAIN = ("B0021", "E0003")
REAL_TEST = CROSS_VENDOR
#: The shipped 2.5d model's slice step at prediction (mm). Its training series are all
#: 5 mm, where the step stacks the very slices training did (checked when packing); on a
#: thinner series it keeps the 5 mm of context the model learnt instead of 1-2 mm.
SHIPPED_STEP_MM = 5.0
PHANTOM_DEMO = ["--patients", "40", "--slices", "48", "--size", "256", "--epochs", "60",
                "--hyp", "ultralytics", "--seed", "0", "--no-real"]


def real_commands(recipe: Recipe, work: str = "WORK") -> list[str]:
    """The shell commands equivalent to :func:`make_real`'s fold A0002 (for the card)."""
    weights = "" if recipe.pretrained is None else (
        f" --weights {recipe.pretrained.relative_to(REPO)}")
    jitter = f" --hu-jitter {recipe.hu_jitter}" if recipe.hu_jitter != "0" else ""
    return [
        f"python tools/real_protocol.py stage {work}/data {' '.join(REAL_TRAIN)}",
        f"detect convert {work}/data/Lung-PET-CT-Dx {work}/data/Annotation {work}/dataset "
        f"--classes {recipe.classes} --channels {recipe.channels} --split 1,0,0 "
        f"--negatives {recipe.negatives} --negatives-from {recipe.negatives_from}{jitter} "
        f"--seed {recipe.seed}",
        f"python tools/real_protocol.py val-from-train {work}/dataset",
        f"detect train --model yolov8 --size n --data {work}/dataset --epochs {recipe.epochs} "
        f"--imgsz {recipe.imgsz} --batch {recipe.batch}{_yolo_options(recipe)} "
        f"--seed {recipe.seed} --device cpu{weights} --project {work}/runs --name real-yolov8n",
        "(the same for the folds without B0021 and without E0003; their held-out patients' "
        "predictions choose thresholds.conf: tools/real_folds.py)",
        f"detect predict ../shared/realdata/lung-pet-ct-dx-{REAL_TEST}/Lung-PET-CT-Dx "
        f"--weights weights/real-yolov8n --conf 0.001 --out {work}/predict-{REAL_TEST}",
    ]


def _yolo_options(recipe: Recipe) -> str:
    options = [f"--nbs {recipe.nbs}" if recipe.nbs is not None else "",
               f"--optimizer {recipe.optimizer}" if recipe.optimizer != "auto" else "",
               f"--lr0 {recipe.lr0}" if recipe.lr0 is not None else "",
               f"--mosaic {recipe.mosaic}" if recipe.mosaic is not None else ""]
    return "".join(f" {option}" for option in options if option)


def _scrub(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_scrub(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, old, new) for k, v in value.items()}
    return value


def slice_step_unchanged(dicom_root: Path, step_mm: float) -> None:
    """Refuse unless a 2.5d ``step_mm`` stacks, on every series under ``dicom_root``, the
    very slices one position does (what the model was trained on).

    Raises:
        SystemExit: a series where the two differ.
    """
    from detect.convert.index import build_index
    from detect.io.slice_order import neighbour_indices

    for uid, series in build_index(dicom_root).series().items():
        if neighbour_indices(series, (-1, 0, 1), step_mm) != neighbour_indices(series, (-1, 0, 1)):
            raise SystemExit(f"series {uid}: a {step_mm:g} mm step stacks other slices than "
                             "the training did; the model cannot take that step")


def pack(run: Path, target: Path, work: Path, dataset_note: str,
         step_mm: float | None = None) -> None:
    """Copy a run folder's model.json, best.pt and metrics.csv into ``target``;
    ``step_mm``: the 2.5d recipe's ``slice_step_mm`` (see :data:`SHIPPED_STEP_MM`)."""
    manifest = json.loads((run / "model.json").read_text())
    if step_mm is not None:
        manifest["recipe"]["slice_step_mm"] = step_mm
    for old, new in ((str(work.resolve()), "<work>"), (str(work), "<work>"),
                     (f"{REPO}/", "")):
        manifest = _scrub(manifest, old, new)
    manifest["weights"] = {"best": "weights/best.pt", "last": "weights/best.pt"}
    manifest["dataset"]["path"] = dataset_note
    (target / "weights").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "weights" / "best.pt", target / "weights" / "best.pt")
    shutil.copyfile(run / "metrics.csv", target / "metrics.csv")
    (target / "model.json").write_text(json.dumps(manifest, indent=1))


def make_phantom(work: Path) -> None:
    out = work / "demo"
    subprocess.run([sys.executable, "-m", "detect.cli", "demo", "--out", str(out),
                    *PHANTOM_DEMO], check=True)
    pack(out / "runs" / "yolov8" / "demo", PHANTOM_DIR, work,
         "demo_out/dataset (made by `detect demo`, seed 0)")


def make_real(work: Path, realdata: Path, recipe: Recipe) -> dict[str, Any]:
    """The three folds (:func:`real_folds.leave_one_out`: A0002 scored last), the fold-A0002
    run packed as the shipped model, A0002's figures into scores.json."""
    folds, point, rows = leave_one_out(recipe, work / "loo", realdata)
    (row,) = [r for r in rows if r["held_out"] == REAL_TEST]
    return pack_real(folds[REAL_TEST].run, recipe, row, point)


def pack_real(run: Path, recipe: Recipe, row: dict[str, Any], point: dict[str, Any]
              ) -> dict[str, Any]:
    """Check ``run`` (B0021 + E0003 only, ``recipe``, the operating point), pack it, write
    scores.json from A0002's ``row``."""
    _check_trained_on(run, REAL_TRAIN)
    _check_recipe(run, recipe)
    manifest = json.loads((run / "model.json").read_text())
    if manifest.get("operating_point") != point:
        raise SystemExit(f"{run}: its operating point is not the one chosen on the "
                         f"same-vendor folds ({point})")
    note = (f"{'+'.join(REAL_TRAIN)} of Lung-PET-CT-Dx, converted by tools/real_protocol.py "
            f"(weights/real-yolov8n/CARD.md)")
    work = run.parents[3]  # WORK/without-A0002/runs/yolov8/NAME
    slice_step_unchanged(work / "data" / "Lung-PET-CT-Dx", SHIPPED_STEP_MM)
    pack(run, REAL_DIR, work, note, step_mm=SHIPPED_STEP_MM)
    result = {"patient": REAL_TEST, "data": "real CT, every slice of both CT series",
              "recipe": recipe.describe(), "evaluated": "once, after every choice",
              **{k: v for k, v in row.items() if k != "score"}, "score": row["score"]}
    (REAL_DIR / "scores.json").write_text(json.dumps(result, indent=1))
    return result


def _check_trained_on(run: Path, patients: tuple[str, ...]) -> None:
    splits = json.loads((run / "model.json").read_text())["dataset"]["splits"]
    # val holds images of the training patients (val from train), never another patient
    if (sorted(splits["train"]) != sorted(patients) or set(splits["val"]) - set(patients)
            or splits["test"]):
        raise SystemExit(f"{run} was trained on {splits}, not on {patients} only")


def _check_recipe(run: Path, recipe: Recipe) -> None:
    args = json.loads((run / "model.json").read_text())["args"]
    wanted = {"epochs": recipe.epochs, "imgsz": recipe.imgsz, "batch": recipe.batch,
              "nbs": recipe.nbs, "optimizer": recipe.optimizer, "lr0": recipe.lr0,
              "mosaic": recipe.mosaic, "seed": recipe.seed}
    found = {key: args.get(key) for key in wanted}
    if found != wanted:
        raise SystemExit(f"{run} was trained with {found}, not the shipped recipe {wanted}")
    dataset = json.loads((Path(args["data"]) / "dataset.json").read_text())
    converted = dataset["converter"]["args"]
    jitter = dataset.get("augmentation", {}).get("hu_jitter", {}).get("copies", 0)
    if (converted["negatives_from"], converted["negatives"], jitter) != (
            recipe.negatives_from, recipe.negatives, int(recipe.hu_jitter.split(",")[0])):
        raise SystemExit(f"{run}'s dataset was not converted with the shipped recipe")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--which", default="phantom,real")
    parser.add_argument("--realdata", type=Path, default=REALDATA)
    parser.add_argument("--work", type=Path, default=None, help="keep the work here")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    parser.add_argument("--pack", type=Path, default=None,
                        help="pack this finished fold-A0002 run of real_loo.py --recipe shipped")
    parser.add_argument("--scores", type=Path, default=None,
                        help="with --pack: real_loo's results JSON holding its A0002 row")
    args = parser.parse_args(argv)
    which = {w.strip() for w in args.which.split(",")}
    print("phantom: detect demo --out WORK/demo " + " ".join(PHANTOM_DEMO))
    print("real:\n  " + "\n  ".join(real_commands(SHIPPED)))
    if args.dry_run:
        return
    if args.pack is not None:
        if args.scores is None:
            raise SystemExit("--pack needs --scores (real_loo's results JSON)")
        results = json.loads(args.scores.read_text())
        (row,) = [r for r in results["rows"] if r["held_out"] == REAL_TEST and r["train"]]
        _report(pack_real(args.pack, SHIPPED, row, results["operating_point"]))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="make-demo-weights-"))
    if "phantom" in which:
        make_phantom(work / "phantom")
    if "real" in which:
        _report(make_real(work / "real", args.realdata, SHIPPED))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


def _report(result: dict[str, Any]) -> None:
    print(f"{REAL_TEST} (never trained on, evaluated once): AP50 annotated "
          f"{result['ap50_annotated']}, lesion sensitivity at <= 2 FP lesions per series "
          f"{result['lesion_sens_at_2']}, found at conf {result['conf']:.3f}: {result['found']}")


if __name__ == "__main__":
    main()
