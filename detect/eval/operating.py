"""The operating point: the score threshold a model reports at, chosen on its validation
split for a stated target, from the lesion-level curve (:mod:`detect.eval.lesions`).

Targets (``detect train --operating-point``):

- ``sensitivity@2fp`` (default): the point of the lesion FROC curve at 2 false-positive
  lesions per scan (CT series): the lowest threshold before the false positives per scan
  first exceed 2, so the highest sensitivity the budget buys, with the budget used.
  ``sensitivity@Nfp`` takes any rate N > 0. A radiologist reads a handful of candidate
  lesions per scan; two false ones per scan is the usual budget of lung-nodule CAD
  (LUNA16's FROC runs to 8). Until 2026-12-07 ties went to the highest threshold that
  reached the same sensitivity (fewer false positives on the validation split), which
  puts the threshold at the score of the weakest validation lesion, with no margin for a
  scanner whose scores run lower: on real CT, chosen on one GE patient's curve that rule
  gave 0.928 and missed one of the other GE patient's two lesions, where this one gave
  0.295 and found both, with no false positive there (tools/real_folds.py folds).
- ``max-f1``: the threshold of the highest lesion-level F1 = 2 hits / (2 hits + false
  positives + missed), ties to the higher threshold.

With no true lesion in the split, or no prediction, the model keeps its family's default
threshold and the record says why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from detect.dataset import DatasetInfo
from detect.errors import ConfigError
from detect.eval.lesions import froc_points, split_curves
from detect.eval.truth import assign_predictions, load_truth
from detect.lesions import LinkRule
from detect.predictions import Prediction

DEFAULT_TARGET = "sensitivity@2fp"
_SENSITIVITY = re.compile(r"^sensitivity@(\d+(\.\d+)?)fp$")
#: IoU at which a predicted lesion hits a true one (the medical-detection convention).
HIT_IOU = 0.1


def check_target(target: str) -> str:
    """Raise ConfigError unless ``target`` is ``sensitivity@<N>fp`` (N > 0) or ``max-f1``."""
    match = _SENSITIVITY.match(target)
    if target != "max-f1" and (match is None or not float(match.group(1)) > 0):
        raise ConfigError(f"--operating-point must be sensitivity@<N>fp (N > 0 false positive "
                          f"lesions per series, e.g. {DEFAULT_TARGET}) or max-f1, got "
                          f"{target!r}")
    return target


def _choose(target: str, thresholds: np.ndarray, fp_rate: np.ndarray,
            sensitivity: np.ndarray, lesions: int, scans: int) -> int:
    """Index into the curve (1..: index 0 is the empty start) of the chosen point."""
    match = _SENSITIVITY.match(target)
    if match is not None:
        over = np.nonzero(fp_rate > float(match.group(1)))[0]
        end = int(over[0]) if len(over) else len(fp_rate)
        last = end - 1  # the lowest threshold within the budget (the curve only gains FPs)
        if end < len(fp_rate):  # boxes tied with the first one over the budget come with it
            while last >= 1 and thresholds[last] == thresholds[end]:
                last -= 1
        return max(last, 1)
    hits = sensitivity[1:] * lesions
    f1 = 2 * hits / np.maximum(2 * hits + fp_rate[1:] * scans + (lesions - hits), 1e-12)
    return 1 + int(np.flatnonzero(f1 == f1.max())[0])


def operating_point(dataset: DatasetInfo, split: str, predictions: Sequence[Prediction], *,
                    target: str, rule: LinkRule, default: float) -> dict[str, Any]:
    """The chosen threshold and what it gives on ``split`` (module docstring): ``conf``,
    ``target``, ``split``, ``sensitivity``, ``fp_per_scan``, ``lesions``, ``scans``, and
    ``note`` when the default was kept."""
    check_target(target)
    truth = load_truth(dataset, split)
    curves, linked_in = split_curves(truth, assign_predictions(truth, predictions).by_image,
                                     rule=rule, iou=HIT_IOU)
    thresholds, fp_rate, sensitivity = froc_points(curves)
    lesions = sum(c.true_lesions for c in curves)
    record: dict[str, Any] = {"target": target, "split": split, "lesions": lesions,
                              "scans": len(curves), "linked_in": linked_in, "iou": HIT_IOU}
    return {**record, **choose_point(thresholds, fp_rate, sensitivity, target=target,
                                     lesions=lesions, scans=len(curves), default=default)}


def choose_point(thresholds: np.ndarray, fp_rate: np.ndarray, sensitivity: np.ndarray, *,
                 target: str, lesions: int, scans: int, default: float) -> dict[str, Any]:
    """The point of a lesion-level curve (:func:`detect.eval.lesions.froc_points`'
    arrays, ``(inf, 0, 0)`` first) that ``target`` picks: ``conf``, ``sensitivity``,
    ``fp_per_scan``, and ``note`` when there is no curve and ``default`` is kept."""
    check_target(target)
    if lesions == 0 or len(thresholds) < 2:
        why = "no true lesion in the split" if lesions == 0 else "no prediction on the split"
        return {"conf": default, "sensitivity": None, "fp_per_scan": None,
                "note": f"{why}: the family's default threshold is kept"}
    k = _choose(target, thresholds, fp_rate, sensitivity, lesions, scans)
    conf = float(thresholds[k])
    return {"conf": conf if math.isfinite(conf) else default,
            "sensitivity": float(sensitivity[k]), "fp_per_scan": float(fp_rate[k])}
