"""Score prediction records against a converted dataset's ground truth.

Model-agnostic: this package never
imports a model; it sees only contract-4 prediction records, so every model family is
scored by the same code. What is computed, and exactly how:

- COCO mAP50, mAP50-95 and AP per class through pycocotools' COCOeval (area "all", 100
  detections per image); AP at IoU 0.1 (the nnDetection / MONAI convention) with
  COCOeval at ``iouThrs=[0.1]``; on a multi-class dataset also class-agnostic AP.
- FROC (``eval_froc``): sensitivity at 1/8 ... 8 false positives per CT series, and their
  mean; lesion-level, class-agnostic hits at IoU >= ``iou_froc`` (0.1).
- Per-patient sensitivity at the operating threshold ``conf`` (the model's): a patient's tumour is
  found when one of its gt boxes is hit (IoU >= ``iou_froc``, score >= conf).
- Lesion-level FROC and per-lesion sensitivity (``eval_lesions``): the gt boxes and the
  records of each series linked into 3D lesions (by slice index: the dataset records no
  slice positions), a hit when a predicted lesion overlaps a true one on a slice at IoU
  >= ``iou_froc``.
- Histology (``eval_histology``) from the detector's letters and, separately, from a
  histology head's probabilities, slice- and patient-level.
- 95% CIs by bootstrap over patients (``eval_bootstrap``) for the headline numbers.
- Leakage guard: patients the model was trained on must not be in the evaluated split.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

from detect.dataset import DatasetInfo
from detect.errors import ConfigError
from detect.eval.leak import leak_overlap
from detect.eval.lesions import lesion_section
from detect.eval.result import EvalResult
from detect.eval.sections import (
    bootstrap_section,
    detection_section,
    froc_section,
    gallery_section,
    histology_section,
    patient_section,
)
from detect.eval.truth import (
    Assignment,
    SplitTruth,
    assign_predictions,
    check_categories,
    load_truth,
)
from detect.lesions import LinkRule
from detect.predictions import DEFAULT_CONF, SCORING_CONF, Prediction, recorded_threshold

logger = logging.getLogger(__name__)


def check_options(bootstrap: int, iou_froc: float, conf: float | None) -> None:
    if bootstrap < 0:
        raise ConfigError(f"--bootstrap must be >= 0 replicates, got {bootstrap}")
    if not 0.0 < iou_froc <= 1.0:
        raise ConfigError(f"--iou-froc must be in (0, 1], got {iou_froc}")
    if conf is not None and not 0.0 <= conf <= 1.0:
        raise ConfigError(f"--conf must be in [0, 1], got {conf}")


def cut_warning(predictions: Sequence[Prediction]) -> str | None:
    """A warning when the records say they were cut at a score above
    :data:`~detect.predictions.SCORING_CONF` (predict's operating threshold by default):
    the boxes below the cut are missing, so AP and FROC are measured on part of the
    curve only and come out lower than the model's."""
    cut = recorded_threshold(predictions)
    if cut is None or cut <= SCORING_CONF:
        return None
    return (f"the predictions were cut at score {cut:g} (their score_threshold): the boxes "
            f"below it are missing, so mAP, AP@0.1 and FROC measure only the curve above "
            f"{cut:g} and come out lower than the model's; for scoring, predict with --conf 0 "
            f"(or score the model itself with eval --weights)")


def evaluate_predictions(
    dataset: DatasetInfo,
    split: str,
    predictions: Sequence[Prediction],
    *,
    train_patients: Collection[str] | None = None,
    allow_leak: bool = False,
    bootstrap: int = 1000,
    seed: int = 0,
    iou_froc: float = 0.1,
    conf: float = DEFAULT_CONF,
    link: LinkRule | None = None,
) -> EvalResult:
    """Score ``predictions`` against ``split`` of ``dataset`` (module docstring).

    ``train_patients``: the patients the model was trained on; when given, any of them in
    ``split`` is leakage (see :func:`leak_overlap`). None: not checked (marked so).
    ``link``: how boxes become lesions (None: :class:`detect.lesions.LinkRule`'s default).

    Raises:
        ConfigError: an option is out of range.
        DatasetError: the split's ground truth is missing or malformed.
        RunFolderError: leakage, unless ``allow_leak``.
        PredictionsError: a record's category_id is not a class, or contradicts its label.
    """
    check_options(bootstrap, iou_froc, conf)
    truth = load_truth(dataset, split)
    overlap = (
        [] if train_patients is None
        else leak_overlap(train_patients, truth.patients, split, allow_leak)
    )
    check_categories(predictions, truth.classes)
    assignment = assign_predictions(truth, predictions)
    detection, tables = detection_section(truth, assignment.by_image)
    froc, matches, froc_table = froc_section(truth, assignment.by_image, iou_froc)
    per_patient, found = patient_section(truth, matches, conf)
    histology = histology_section(truth, assignment.by_image, conf, iou_froc)
    ci = bootstrap_section(
        truth, tables, froc_table, found, histology, detection, froc, per_patient,
        n=bootstrap, seed=seed,
    )
    return EvalResult(
        split=split,
        classes=truth.classes,
        class_mode=truth.class_mode,
        dataset={"path": str(dataset.root), "fingerprint": dataset.fingerprint},
        settings={"iou_froc": iou_froc, "conf": conf, "bootstrap": bootstrap, "seed": seed},
        counts=_counts(truth, assignment, len(predictions), froc["scans"]),
        detection=detection,
        froc=froc,
        per_patient=per_patient,
        histology=histology,
        ci=ci,
        leak={"checked": train_patients is not None, "allowed": allow_leak,
              "patients": overlap},
        gallery=gallery_section(truth, assignment.by_image, matches, conf),
        warnings=tuple(w for w in (cut_warning(predictions),) if w),
        lesions=lesion_section(truth, assignment.by_image, iou=iou_froc, conf=conf,
                               rule=link or LinkRule()),
    )


def _counts(truth: SplitTruth, assignment: Assignment, n_predictions: int, scans: int
            ) -> dict[str, Any]:
    return {
        "images": len(truth.images),
        "gt_boxes": sum(len(i.boxes) for i in truth.images.values()),
        "patients": len(truth.patients),
        "scans": scans,
        "patients_per_letter": truth.patients_per_letter(),
        "predictions": n_predictions,
        "predictions_in_split": assignment.in_split,
        "predictions_outside_split": assignment.outside_split,
        "predictions_outside_split_examples": list(assignment.outside_examples),
        "predictions_unmapped_label": assignment.unmapped,
    }
