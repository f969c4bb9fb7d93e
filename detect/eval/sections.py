"""The sections of an evaluation (detection, FROC, per-patient, histology, bootstrap,
gallery), each a JSON-able dict built from the split's truth and assigned detections.

``detect.eval`` strings these together; the definitions live in ``eval_coco``,
``eval_froc``, ``eval_histology`` and ``eval_bootstrap``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from detect.boxes import area
from detect.eval.bootstrap import BootstrapInputs, bootstrap_cis
from detect.eval.coco import (
    IOU_50_95,
    REC_THRS,
    ApTable,
    ap_tables,
    coco_gt,
    coco_results,
    cocoeval_precision,
    mean_ap,
    mean_of,
    per_class_ap,
)
from detect.eval.froc import (
    FALSE_POSITIVE,
    FROC_RATES,
    FrocTable,
    LesionMatches,
    froc_table,
    match_lesions,
    patients_found,
)
from detect.eval.histology import LETTERS, SOURCES, histology_source
from detect.eval.truth import Detection, SplitTruth

logger = logging.getLogger(__name__)
GALLERY_SIZE = 12
FAST_AP_TOLERANCE = 1e-6

ByImage = Mapping[int, Sequence[Detection]]


def finite(value: float | None) -> float | None:
    """NaN → None, for JSON."""
    return None if value is None or not math.isfinite(value) else float(value)


def detection_section(truth: SplitTruth, by_image: ByImage) -> tuple[dict[str, Any],
                                                                      dict[str, list[ApTable]]]:
    """COCO AP through pycocotools, plus the AP tables the bootstrap reuses."""
    gt, results = coco_gt(truth), coco_results(by_image)
    p_coco = cocoeval_precision(gt, results, IOU_50_95)
    p_10 = cocoeval_precision(gt, results, [0.1])
    ap50, ap10 = per_class_ap(p_coco, 0), per_class_ap(p_10, 0)
    patients = truth.patients
    tables = {"ap50": ap_tables(truth, by_image, 0.5, patients),
              "ap10": ap_tables(truth, by_image, 0.1, patients)}
    per_class_patients = truth.patients_per_class()
    per_class = {}
    for k, name in enumerate(truth.classes):
        per_class[name] = {
            "ap50": ap50[k], "ap10": ap10[k],
            "patients": per_class_patients[name],
            "gt_boxes": int(tables["ap50"][k].npos.sum()),
            "predictions": len(tables["ap50"][k].scores),
            "pr_curve_iou50": None if ap50[k] is None else [float(v) for v in p_coco[0, :, k]],
        }
    section: dict[str, Any] = {
        "map50": finite(mean_ap(p_coco[:1])),
        "map50_95": finite(mean_ap(p_coco)),
        "ap10": finite(mean_ap(p_10)),
        "per_class": per_class,
        "recall_thresholds": [float(r) for r in REC_THRS],
        "source": "pycocotools COCOeval, bbox, area all, maxDets 100",
    }
    if len(truth.classes) > 1:
        p_agn = cocoeval_precision(coco_gt(truth, agnostic=True),
                                   coco_results(by_image, agnostic=True), [0.5, 0.1])
        section["agnostic_ap50"] = finite(mean_ap(p_agn[:1]))
        section["agnostic_ap10"] = finite(mean_ap(p_agn[1:]))
    section["fast_ap_check"] = _fast_ap_check(section, tables)
    return section, tables


def _fast_ap_check(section: Mapping[str, Any], tables: Mapping[str, list[ApTable]]
                   ) -> dict[str, Any]:
    diffs = {}
    for name, table in (("map50", "ap50"), ("ap10", "ap10")):
        fast = finite(mean_of(t.ap() for t in tables[table]))
        ref = section[name]
        diffs[name] = 0.0 if fast is None and ref is None else abs((fast or 0.0) - (ref or 0.0))
    worst = max(diffs.values())
    if worst > FAST_AP_TOLERANCE:
        logger.warning("bootstrap AP differs from pycocotools by %.2g on the full set", worst)
    return {"max_abs_diff": worst, "tolerance": FAST_AP_TOLERANCE,
            "ok": worst <= FAST_AP_TOLERANCE}


def froc_section(truth: SplitTruth, by_image: ByImage, iou: float
                 ) -> tuple[dict[str, Any], LesionMatches, FrocTable]:
    """FROC (eval_froc's definitions) with its curve."""
    matches = match_lesions(truth, by_image, iou)
    table = froc_table(truth, by_image, matches, truth.patients)
    fp_rate, sensitivity = table.curve()
    values = table.sensitivities()
    kinds = np.array([k for ks in matches.kind.values() for k in ks], dtype=int)
    section = {
        "iou": iou,
        "rates_fp_per_scan": list(FROC_RATES),
        "sensitivity": [finite(v) for v in values],
        "mean": finite(float(np.mean(values))),
        "scans": int(table.scans.sum()),
        "lesions": int(table.lesions.sum()),
        "hits": int((kinds == 1).sum()),
        "false_positives": int((kinds == FALSE_POSITIVE).sum()),
        "duplicates": int((kinds == 0).sum()),
        "curve": {"fp_per_scan": [float(v) for v in fp_rate],
                  "sensitivity": [float(v) for v in sensitivity]},
    }
    return section, matches, table


def patient_section(truth: SplitTruth, matches: LesionMatches, conf: float
                    ) -> tuple[dict[str, Any], np.ndarray]:
    """Per-patient sensitivity at ``conf``; also the per-patient found array (NaN: no box)."""
    found = patients_found(truth, matches, conf)
    per_letter: dict[str, dict[str, int]] = {}
    for patient, hit in found.items():
        letter = truth.patient_letters.get(patient) or "?"
        entry = per_letter.setdefault(letter, {"found": 0, "patients": 0})
        entry["patients"] += 1
        entry["found"] += int(hit)
    array = np.array([float(found[p]) if p in found else np.nan for p in truth.patients])
    section = {
        "conf": conf,
        "iou": matches.iou,
        "sensitivity": finite(sum(found.values()) / len(found)) if found else None,
        "found": sum(found.values()),
        "patients_with_tumour": len(found),
        "per_letter": dict(sorted(per_letter.items())),
        "patients": dict(sorted(found.items())),
    }
    return section, array


def histology_section(truth: SplitTruth, by_image: ByImage, conf: float, iou: float
                      ) -> dict[str, Any]:
    """Histology metrics of each source (eval_histology)."""
    return {source: histology_source(truth, by_image, source, conf, iou) for source in SOURCES}


def bootstrap_section(
    truth: SplitTruth, tables: Mapping[str, list[ApTable]], froc: FrocTable,
    found: np.ndarray, histology: Mapping[str, Any], detection: Mapping[str, Any],
    froc_result: Mapping[str, Any], per_patient: Mapping[str, Any], *, n: int, seed: int,
) -> dict[str, Any]:
    """95% bootstrap CIs of the headline numbers (eval_bootstrap)."""
    patients = truth.patients
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    point: dict[str, float | None] = {
        "map50": detection["map50"], "ap10": detection["ap10"],
        "froc_mean": froc_result["mean"], "patient_sensitivity": per_patient["sensitivity"],
    }
    for source, section in histology.items():
        if not section.get("available"):
            continue
        guesses = section["patient"]["predictions"]
        truth_idx = np.array([LETTERS.index(truth.patient_letters[p] or "")
                              if p in guesses else -1 for p in patients], dtype=int)
        pred_idx = np.array([LETTERS.index(guesses[p]) if p in guesses else -1
                             for p in patients], dtype=int)
        pairs[source] = (truth_idx, pred_idx)
        point[f"patient_balanced_accuracy_{source}"] = section["patient"]["balanced_accuracy"]
    inputs = BootstrapInputs(tuple(patients), tables["ap50"], tables["ap10"], froc, found, pairs)
    return {"method": "percentile bootstrap over patients", "replicates": n, "seed": seed,
            "metrics": bootstrap_cis(inputs, point, n, seed)}


def gallery_section(truth: SplitTruth, by_image: ByImage, matches: LesionMatches,
                    conf: float) -> dict[str, Any]:
    """The worst false positives (highest-scoring detections overlapping no gt box) and
    the missed tumours (gt boxes not hit at score >= conf; largest first)."""
    false_positives: list[dict[str, Any]] = []
    missed: list[dict[str, Any]] = []
    for image_id, image in truth.images.items():
        dets = by_image.get(image_id, ())
        shown = [{"xyxy": list(d.xyxy), "score": d.score, "label": d.label}
                 for d in dets if d.score >= conf]
        base = {"image_id": image_id, "file_name": image.file_name,
                "patient_id": image.patient_id}
        for det, kind in zip(dets, matches.kind[image_id]):
            if kind == FALSE_POSITIVE:
                false_positives.append({**base, "xyxy": list(det.xyxy), "score": det.score,
                                        "label": det.label,
                                        "gt": [list(b.xyxy) for b in image.boxes]})
        for box, hit in zip(image.boxes, matches.hit_score[image_id]):
            if hit is None or hit < conf:
                missed.append({**base, "xyxy": list(box.xyxy), "letter": box.letter,
                               "hit_score": hit, "detections": shown})
    false_positives.sort(key=lambda r: (-r["score"], r["image_id"]))
    missed.sort(key=lambda r: (-area(r["xyxy"]), r["image_id"]))
    at_conf = sum(1 for r in false_positives if r["score"] >= conf)
    return {"conf": conf, "false_positives_at_conf": at_conf, "missed_at_conf": len(missed),
            "false_positives": false_positives[:GALLERY_SIZE], "missed": missed[:GALLERY_SIZE]}
