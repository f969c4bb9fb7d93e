"""FROC and per-patient sensitivity: class-agnostic, lesion-level.

Definitions (the LUNA16 / CPM convention, on 2D slices):

- A *lesion* is one ground-truth box on one slice (Lung-PET-CT-Dx annotates slices, not
  3D nodules). A *scan* is one CT series (``series_instance_uid``) with at least one slice
  in the split; every such series counts, whether or not it has detections.
- Matching, per slice, ignoring classes: detections in descending score order; each takes
  the not-yet-hit gt box of highest IoU >= ``iou`` (default 0.1) and is a *hit* (TP). A
  detection that overlaps (IoU >= ``iou``) only gt boxes already hit is a *duplicate*: it
  neither hits nor counts as a false positive. A detection overlapping no gt box is a
  *false positive*. Each gt box is hit at most once. Because matching runs in score
  order, the hits at any score threshold are the hits of the detections above it.
- FROC curve: for every distinct score threshold s, sensitivity = hits(score >= s) /
  lesions, FP/scan = false positives(score >= s) / scans; the curve starts at (0, 0).
- Sensitivity at a rate r (1/8 ... 8 FP/scan) is the highest sensitivity of any point with
  FP/scan <= r (the curve's value just before it exceeds r); the FROC score is the mean
  over the 7 rates (CPM).
- Per-patient sensitivity at the operating threshold ``conf`` (default 0.25): a patient
  with at least one gt box is *found* when at least one of its gt boxes is hit by a
  detection with score >= conf.

Predictions on slices outside the split never reach this module (they are counted by
``eval_data.assign_predictions``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from detect.boxes import box_iou
from detect.eval.truth import Detection, SplitTruth

#: False positives per scan at which FROC sensitivity is read (LUNA16).
FROC_RATES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
HIT, DUPLICATE, FALSE_POSITIVE = 1, 0, -1


@dataclass(frozen=True)
class LesionMatches:
    """Class-agnostic matches of the whole split.

    ``kind[image_id][j]`` is HIT / DUPLICATE / FALSE_POSITIVE for the j-th detection of
    that slice (input order); ``hit_score[image_id][g]`` is the score of the detection
    that hit gt box g (None: never hit); ``best_iou[image_id][j]`` is a detection's best
    IoU with any gt box of its slice.
    """

    iou: float
    kind: dict[int, list[int]]
    hit_score: dict[int, list[float | None]]
    best_iou: dict[int, list[float]]


def match_lesions(
    truth: SplitTruth, by_image: Mapping[int, Sequence[Detection]], iou: float
) -> LesionMatches:
    """Greedy class-agnostic matching of every slice (module docstring)."""
    kinds: dict[int, list[int]] = {}
    hits: dict[int, list[float | None]] = {}
    best: dict[int, list[float]] = {}
    for image_id, image in truth.images.items():
        dets = list(by_image.get(image_id, ()))
        gts = np.array([b.xyxy for b in image.boxes], dtype=float).reshape(-1, 4)
        ious = box_iou(np.array([d.xyxy for d in dets], dtype=float).reshape(-1, 4), gts)
        kind = [FALSE_POSITIVE] * len(dets)
        hit: list[float | None] = [None] * len(gts)
        for j in np.argsort([-d.score for d in dets], kind="mergesort"):
            overlapping = ious[j] >= iou
            free = overlapping & np.array([h is None for h in hit], dtype=bool)
            if free.any():
                g = int(np.argmax(np.where(free, ious[j], -1.0)))
                hit[g], kind[j] = dets[j].score, HIT
            elif overlapping.any():
                kind[j] = DUPLICATE
        kinds[image_id], hits[image_id] = kind, hit
        best[image_id] = [float(ious[j].max()) if len(gts) else 0.0 for j in range(len(dets))]
    return LesionMatches(iou, kinds, hits, best)


@dataclass(frozen=True)
class FrocTable:
    """Detections in score order (descending) with their kind and patient index, and the
    lesions and scans of each patient: FROC on any multiset of patients."""

    scores: np.ndarray
    kind: np.ndarray
    patient: np.ndarray
    lesions: np.ndarray
    scans: np.ndarray

    def curve(self, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(FP per scan, sensitivity) at each distinct score, starting at (0, 0); empty
        arrays when no lesion or scan is counted."""
        w = np.ones(len(self.lesions)) if weights is None else np.asarray(weights, float)
        lesions, scans = float(np.dot(w, self.lesions)), float(np.dot(w, self.scans))
        if lesions <= 0 or scans <= 0:
            return np.zeros(0), np.zeros(0)
        det_w = w[self.patient]
        hits = np.cumsum(det_w * (self.kind == HIT))
        fps = np.cumsum(det_w * (self.kind == FALSE_POSITIVE))
        last_of_tie = np.append(self.scores[1:] != self.scores[:-1], True)[: len(self.scores)]
        fp_rate = np.concatenate([[0.0], fps[last_of_tie] / scans])
        sensitivity = np.concatenate([[0.0], hits[last_of_tie] / lesions])
        return fp_rate, sensitivity

    def sensitivities(self, weights: np.ndarray | None = None) -> list[float]:
        """Sensitivity at each of FROC_RATES (NaN when no lesion is counted)."""
        fp_rate, sensitivity = self.curve(weights)
        if len(fp_rate) == 0:
            return [float("nan")] * len(FROC_RATES)
        return [float(sensitivity[fp_rate <= rate].max()) for rate in FROC_RATES]


def froc_table(
    truth: SplitTruth, by_image: Mapping[int, Sequence[Detection]], matches: LesionMatches,
    patients: Sequence[str],
) -> FrocTable:
    """Collect the split's matches into a FrocTable (patients indexed as ``patients``)."""
    index_of = {p: i for i, p in enumerate(patients)}
    lesions = np.zeros(len(patients))
    scans: dict[int, set[str]] = {i: set() for i in range(len(patients))}
    scores, kinds, owner = [], [], []
    for image_id, image in truth.images.items():
        p = index_of[image.patient_id]
        lesions[p] += len(image.boxes)
        scans[p].add(image.scan)
        for det, kind in zip(by_image.get(image_id, ()), matches.kind[image_id]):
            scores.append(det.score)
            kinds.append(kind)
            owner.append(p)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
    return FrocTable(
        np.asarray(scores, dtype=float)[order],
        np.asarray(kinds, dtype=int)[order],
        np.asarray(owner, dtype=int)[order],
        lesions,
        np.array([len(scans[i]) for i in range(len(patients))], dtype=float),
    )


def patients_found(
    truth: SplitTruth, matches: LesionMatches, conf: float
) -> dict[str, bool]:
    """Per patient with at least one gt box: is any of its boxes hit at score >= conf."""
    found: dict[str, bool] = {}
    for image_id, image in truth.images.items():
        if not image.boxes:
            continue
        hit = any(s is not None and s >= conf for s in matches.hit_score[image_id])
        found[image.patient_id] = found.get(image.patient_id, False) or hit
    return found
