"""95% confidence intervals by bootstrap over patients.

Each replicate draws the split's patients with replacement (as many as there are) and
recomputes the headline numbers on that multiset of patients; a patient drawn k times
counts k times. The interval is the 2.5th-97.5th percentile of the replicates for which
the number is defined (e.g. a replicate with no adenocarcinoma patient has no AP for A;
mAP then averages the classes it has, as COCO does). Seeded with ``numpy.random
.default_rng(seed)``.

Matching is done once on the full split (``ApTable``, ``FrocTable``); a replicate only
reweights patients, so 1000 replicates on ~1000 slices take seconds. The mAP of a
replicate uses ``eval_coco.ApTable.ap``, the re-implementation of COCOeval's AP that
equals pycocotools on the full set.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detect.eval.coco import ApTable, mean_of
from detect.eval.froc import FrocTable
from detect.eval.histology import LETTERS, balanced_accuracy

logger = logging.getLogger(__name__)
#: What a CI says when the split has one patient.
ONE_PATIENT = "one patient: no interval"


@dataclass(frozen=True)
class BootstrapInputs:
    """Everything a replicate needs, per patient (index = position in ``patients``).

    ``found``: 1 found / 0 missed / NaN no gt box. ``histology[source]``: (truth, predicted)
    letter indices per patient, -1 where the patient is not scored.
    """

    patients: tuple[str, ...]
    ap50: Sequence[ApTable]
    ap10: Sequence[ApTable]
    froc: FrocTable
    found: np.ndarray
    histology: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def _sensitivity(found: np.ndarray, w: np.ndarray) -> float:
    has = np.isfinite(found)
    total = float(w[has].sum())
    return float(np.dot(w[has], found[has]) / total) if total > 0 else float("nan")


def _balanced(truth: np.ndarray, predicted: np.ndarray, w: np.ndarray) -> float:
    scored = (truth >= 0) & (w > 0)
    matrix = np.zeros((len(LETTERS), len(LETTERS)))
    np.add.at(matrix, (truth[scored], predicted[scored]), w[scored])
    return balanced_accuracy(matrix)


def statistics(inputs: BootstrapInputs, weights: np.ndarray | None = None) -> dict[str, float]:
    """The bootstrapped numbers for patient ``weights`` (None: every patient once)."""
    w = np.ones(len(inputs.patients)) if weights is None else weights
    sensitivities = inputs.froc.sensitivities(w)
    stats = {
        "map50": mean_of(t.ap(w) for t in inputs.ap50),
        "ap10": mean_of(t.ap(w) for t in inputs.ap10),
        "froc_mean": float(np.mean(sensitivities)),
        "patient_sensitivity": _sensitivity(inputs.found, w),
    }
    for source, (truth, predicted) in inputs.histology.items():
        stats[f"patient_balanced_accuracy_{source}"] = _balanced(truth, predicted, w)
    return stats


def bootstrap_cis(
    inputs: BootstrapInputs, point: Mapping[str, float | None], n: int, seed: int
) -> dict[str, dict[str, Any]]:
    """``{name: {value, low, high, replicates}}`` for every statistic; ``value`` is the
    full-set estimate from ``point`` (the reference implementation), low/high None when
    ``n`` is 0 or no replicate defines the number. One patient gives no interval (every
    replicate would be that patient: the "interval" would be the value itself): low/high
    None and ``note`` :data:`ONE_PATIENT`."""
    names = list(statistics(inputs))
    draws: dict[str, list[float]] = {name: [] for name in names}
    n_patients = len(inputs.patients)
    if n > 0 and n_patients > 1:
        rng = np.random.default_rng(seed)
        for _ in range(n):
            counts = np.bincount(rng.integers(0, n_patients, n_patients), minlength=n_patients)
            for name, value in statistics(inputs, counts.astype(float)).items():
                draws[name].append(value)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        values = np.array(draws[name], dtype=float)
        values = values[np.isfinite(values)]
        low, high = (None, None) if values.size == 0 else (
            float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))
        out[name] = {"value": point.get(name), "low": low, "high": high,
                     "replicates": int(values.size), "level": 0.95}
        if n_patients == 1:
            out[name]["note"] = ONE_PATIENT
    logger.debug("bootstrap: %d replicates over %d patients", n, n_patients)
    return out
