"""Leave one real patient out, the operating point chosen on the same-vendor folds: how the
shipped ``weights/real-yolov8n`` is made (``tools/make_demo_weights.py``) and scored
(``tools/benchmarks/real_loo.py``).

The three shared patients: A0002 (Siemens, 8 mm) and B0021, E0003 (one GE model, 5 mm).
Only the fold that holds A0002 out tests a scanner its training never saw; A0002 is
therefore used last and once:

1. every fold is trained with one recipe (``tools/real_protocol.py``, steps 1-4), the
   cross-vendor fold (A0002 held out, trained on B0021 and E0003) first: its run is the
   shipped model, and training it reads nothing of A0002;
2. the same-vendor folds (B0021, E0003 held out, each trained with A0002 and the other GE
   patient: information only) predict every slice of their held-out patient; the
   operating threshold is chosen on their pooled whole-series lesion curve
   (:func:`detect.eval.operating.choose_point`; default target ``sensitivity@2fp``: the
   highest lesion sensitivity at <= 2 false-positive lesions per series) and written into
   every fold's model.json (``thresholds.conf``, ``operating_point``). The threshold
   thus never sees A0002's predictions; A0002's boxes reach it only through the two
   same-vendor models' training;
3. only then is A0002 predicted and scored, once.

``detect train`` also chose an operating point when each run ended, on its validation
split; with the protocol's val-from-train (no patient to spare) that split holds no
patient in dataset.json, so each run kept the family's default with a note, which step 2
replaces.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from real_protocol import (
    PATIENTS,
    Recipe,
    convert_real,
    predict_patient,
    stage,
    train_real,
)

from detect.eval.froc import FROC_RATES
from detect.eval.operating import DEFAULT_TARGET, choose_point
from detect.eval.series import AnnotationBoxes, PredictedSeries, SeriesScore
from detect.runs import read_model_json, write_model_json

#: The one patient whose scanner no other patient shares.
CROSS_VENDOR = "A0002"


@dataclass
class Fold:
    """One fold: the held-out patient, the run trained without it, its training time."""

    held_out: str
    train: tuple[str, ...]
    run: Path
    train_s: float


def fold_dir(work: Path, held_out: str) -> Path:
    return work / f"without-{held_out}"


def train_fold(recipe: Recipe, held_out: str, work: Path, realdata: Path, *,
               init: str = "phantom", workers: int = 2) -> Fold:
    """Steps 1-4 for one fold (a finished run of the same recipe in ``work`` is reused)."""
    train = tuple(p for p in PATIENTS if p != held_out)
    fold = fold_dir(work, held_out)
    dicom, annotation = stage(realdata, train, fold / "data")
    dataset = fold / recipe.dataset_name()
    if not (dataset / "dataset.json").is_file():
        convert_real(dicom, annotation, dataset, recipe, workers=workers)
    name = recipe.run_name(init)
    run = fold / "runs" / "yolov8" / name
    if not _complete(run):
        run = train_real(dataset, recipe, fold / "runs", name, workers=workers)
    model = json.loads((run / "model.json").read_text())
    seconds = (datetime.fromisoformat(model["finished"])
               - datetime.fromisoformat(model["created"])).total_seconds()
    return Fold(held_out, train, run, round(seconds, 1))


def _complete(run: Path) -> bool:
    try:
        return json.loads((run / "model.json").read_text()).get("status") == "complete"
    except (OSError, ValueError):
        return False


def pooled(series: Sequence[PredictedSeries]) -> PredictedSeries:
    """Several patients' whole-series predictions as one set (their slices, records and
    boxes together)."""
    boxes: dict[str, tuple[Any, ...]] = {}
    for one in series:
        boxes.update(one.annotations.boxes)
    return PredictedSeries([s for one in series for s in one.slices],
                           [p for one in series for p in one.predictions],
                           AnnotationBoxes(boxes, tuple(x for one in series
                                                        for x in one.annotations.skipped)))


def choose_conf(series: Sequence[PredictedSeries], patients: Sequence[str], *,
                target: str = DEFAULT_TARGET, default: float = 0.25) -> dict[str, Any]:
    """Step 2: the operating point on the pooled whole-series lesion curve of ``series``
    (the held-out predictions of the folds that hold out ``patients``)."""
    lesions = pooled(series).score(conf=default).lesions
    curve = lesions["curve"]
    thresholds = [float("inf"), *curve["threshold"]]
    point = choose_point(np.asarray(thresholds), np.asarray(curve["fp_per_scan"]),
                         np.asarray(curve["sensitivity"]), target=target,
                         lesions=lesions["lesions"], scans=lesions["scans"], default=default)
    return {"target": target, "lesions": lesions["lesions"], "scans": lesions["scans"],
            "linked_in": lesions["linked_in"], "iou": lesions["iou"], **point,
            "split": (f"whole series of {', '.join(patients)}, each predicted by its "
                      f"leave-one-out fold (tools/real_folds.py)")}


def set_conf(run: Path, point: dict[str, Any]) -> None:
    """Write the operating point into a run's model.json (its thresholds.conf)."""
    manifest = dict(read_model_json(run).manifest)
    manifest["thresholds"] = {**manifest["thresholds"], "conf": point["conf"]}
    manifest["operating_point"] = point
    write_model_json(run, manifest)


def figures(fold: Fold | None, held_out: str, score: SeriesScore, strict: SeriesScore
            ) -> dict[str, Any]:
    """One row of the per-patient table (slice and lesion figures of ``held_out``)."""
    lesions = score.lesions
    mine = lesions["per_patient"].get(held_out, {"lesions": 0, "found": 0})
    at_two = lesions["sensitivity"][FROC_RATES.index(2.0)]
    return {
        "held_out": held_out, "train": list(fold.train) if fold else [],
        "train_s": fold.train_s if fold else None, "conf": score.conf,
        "ap50_annotated": score.ap50_annotated, "ap10_annotated": score.ap10_annotated,
        "ap50_all_slices": score.ap50_all_slices,
        "slice_sensitivity": dict(zip(map(str, score.froc_rates), score.sensitivity)),
        "sens_at_1": score.sensitivity_at(1.0), "sens_at_8": score.sensitivity_at(8.0),
        "sens_at_8_strict": strict.sensitivity_at(8.0),
        "slice_found": bool(score.patients_found.get(held_out, False)),
        "lesion_sensitivity": dict(zip(map(str, lesions["rates_fp_per_scan"]),
                                       lesions["sensitivity"])),
        "lesion_sens_at_2": at_two, "lesion_froc_mean": lesions["mean"],
        "lesions": mine["lesions"], "lesions_found_at_conf": mine["found"],
        "found": mine["found"] > 0,
        "fp_lesions_at_conf_per_series": (lesions["false_positives_at_conf"]
                                          / max(lesions["scans"], 1)),
        "series": lesions["scans"],
        "score": score.to_dict(),
    }


def leave_one_out(recipe: Recipe, work: Path, realdata: Path, *,
                  folds: Sequence[str] = PATIENTS, target: str = DEFAULT_TARGET,
                  init: str = "phantom", workers: int = 2, near_slices: int = 2,
                  log: Any = print) -> tuple[dict[str, Fold], dict[str, Any], list[dict[str, Any]]]:
    """Steps 1-3 over ``folds``; returns the folds, the operating point and one row per
    fold (module docstring). Without a same-vendor fold among ``folds``, each model's own
    threshold is used."""
    order = sorted(folds, key=lambda p: p == CROSS_VENDOR)  # A0002 scored last
    trained = {}
    for held_out in sorted(folds, key=lambda p: p != CROSS_VENDOR):  # the shipped run first
        trained[held_out] = train_fold(recipe, held_out, work, realdata, init=init,
                                       workers=workers)
        log(f"trained without {held_out}: {trained[held_out].run} "
            f"({trained[held_out].train_s:.0f} s)")
    same = [p for p in order if p != CROSS_VENDOR]
    predicted = {p: predict_patient(trained[p].run, realdata, p,
                                    fold_dir(work, p) / f"predict-{trained[p].run.name}")
                 for p in same}
    point: dict[str, Any] = {}
    if same:
        point = choose_conf([predicted[p] for p in same], same, target=target)
        for fold in trained.values():
            set_conf(fold.run, point)
        log(f"operating point: {json.dumps(point)}")
    rows = []
    for held_out in order:
        fold = trained[held_out]
        series = predicted.get(held_out) or predict_patient(
            fold.run, realdata, held_out, fold_dir(work, held_out) / f"predict-{fold.run.name}")
        conf = read_model_json(fold.run).conf
        rows.append(figures(fold, held_out, series.score(conf=conf, near_slices=near_slices),
                            series.score(conf=conf, near_slices=0)))
        log(json.dumps({k: v for k, v in rows[-1].items() if k != "score"}))
    return trained, point, rows


def score_model(run: Path, realdata: Path, patient: str, out: Path, *,
                lung_field: str = "model", near_slices: int = 2) -> dict[str, Any]:
    """A finished model (e.g. the previous shipped one) on one patient: one row."""
    series = predict_patient(run, realdata, patient, out, lung_field)
    conf = read_model_json(run).conf
    return figures(None, patient, series.score(conf=conf, near_slices=near_slices),
                   series.score(conf=conf, near_slices=0))


