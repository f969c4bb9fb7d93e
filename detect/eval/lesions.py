"""Lesion-level FROC and per-lesion sensitivity, beside the slice-level metrics.

Both the ground truth and the predictions of each scan (CT series) are linked into 3D
lesions by the same rule (:func:`detect.lesions.link_series`; the lone rule only drops
predicted lesions). Where the slices are placed:

- ``detect eval`` on a dataset split: the COCO images carry each slice's series and
  ``slice_index`` (its place in the whole series), not its position in mm, so boxes are
  linked by slice index (``linked_in``: ``slice-index``); a split holds the annotated
  slices and the negatives only, so a lesion's slices are those of the split;
- whole series (:mod:`detect.eval.series`): by each slice's position in mm when
  slices.csv gives it (``slice_position_mm``), else by slice index.

The predicted lesions at a threshold t are the records scoring >= t linked, exactly what
``detect predict --conf t`` reports. Linking every record once at the lowest score would
not do: a chain of weak boxes joins a weak tumour to a strong false positive, and the
tumour then "scores" the false positive's score (on A0002 that turned a miss at 0.5 into
a hit). So records are added in descending score (union-find over the link graph:
lowering t only joins lesions) and the scan is counted after each distinct score:

- a predicted lesion *overlaps* a true lesion when one of its boxes and one of the true
  lesion's boxes lie on the same slice with IoU >= ``iou`` (0.1);
- predicted lesions in descending score (a lesion's score is its best box's); each
  takes the not-yet-hit true lesion it overlaps most and is a *hit*; one overlapping
  only true lesions already hit is a *duplicate* (neither); one that overlaps none is a
  *false positive*, unless every one of its boxes is *ignored* (whole-series scoring: a
  box beside an annotated slice, see :mod:`detect.eval.series`), then it is neither; a
  lone box under the rule's ``lone_min_score`` is dropped (neither);
- sensitivity(t) = true lesions hit / true lesions, FP(t) = false positives / scans;
  joining can remove a false positive, so FP(t) need not grow as t falls; sensitivity
  at r FP per scan (1/8 ... 8) is the highest sensitivity reached while walking down the
  thresholds before FP(t) first exceeds r (for a curve whose FP only grows, as the
  slices' in :mod:`detect.eval.froc`, the highest of any point with FP <= r; here a
  later join that hides a false positive cannot lift it); their mean;
- per-lesion sensitivity at the operating threshold ``conf``: true lesions hit at
  t = conf, overall and per patient.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detect.boxes import box_iou
from detect.eval.froc import FROC_RATES
from detect.eval.truth import Detection, SplitTruth
from detect.io.geometry import SeriesGeometry, series_spacing
from detect.lesions import Groups, Lesion, LinkRule, SliceBox, link_edges, link_series

ByImage = Mapping[int, Sequence[Detection]]
_COUNTS = ("hits", "false_positives", "ignored", "lesions", "dropped_lone")


@dataclass(frozen=True)
class ScanCurve:
    """One scan's counts after each distinct score (``thresholds``, descending)."""

    patient: str
    true_lesions: int
    thresholds: np.ndarray
    counts: dict[str, np.ndarray]

    def at(self, threshold: float) -> dict[str, int]:
        """The counts with every record scoring >= ``threshold`` (zeros above them all)."""
        k = int(np.searchsorted(-self.thresholds, -threshold, side="right")) - 1
        return {name: int(values[k]) if k >= 0 else 0 for name, values in self.counts.items()}


@dataclass
class _Root:
    """A predicted lesion while records are added: its score (its first, best box's),
    box count, best IoU per true lesion it overlaps, whether every box is ignored, and a
    fixed tie order."""

    score: float
    size: int
    overlaps: dict[int, float]
    ignored: bool
    order: tuple[int, ...] = field(default=())

    def kind(self, lone_min_score: float) -> str:
        if self.size == 1 and self.score < lone_min_score:
            return "dropped_lone"
        if self.overlaps:
            return "truth"
        return "ignored" if self.ignored else "false_positives"


def _box_overlaps(predicted: Sequence[SliceBox], true: Sequence[Lesion], iou: float
                  ) -> list[dict[int, float]]:
    """Per predicted box, the true lesions it overlaps (IoU >= iou on its slice)."""
    found: list[dict[int, float]] = [{} for _ in predicted]
    for t, lesion in enumerate(true):
        by_slice: dict[str, list[tuple[float, float, float, float]]] = {}
        for box in lesion.boxes:
            by_slice.setdefault(box.slice_key, []).append(box.xyxy)
        for i, box in enumerate(predicted):
            theirs = by_slice.get(box.slice_key)
            if theirs:
                value = float(box_iou(np.array([box.xyxy], float), np.array(theirs, float)).max())
                if value >= iou:
                    found[i][t] = value
    return found


def _hits(roots: Sequence[_Root]) -> int:
    """Greedy one-to-one: lesions by score take the free true lesion they overlap most."""
    taken: set[int] = set()
    for root in sorted(roots, key=lambda r: (-r.score, r.order)):
        free = {t: v for t, v in root.overlaps.items() if t not in taken}
        if free:
            taken.add(max(free, key=lambda t: (free[t], -t)))
    return len(taken)


def scan_curve(patient: str, truth: Sequence[SliceBox], predicted: Sequence[SliceBox],
               ignored: Collection[int], geometry: SeriesGeometry | None, rule: LinkRule,
               iou: float) -> ScanCurve:
    """One scan's counts at every distinct score (module docstring); ``ignored``: the
    indices of ``predicted`` boxes that count neither way."""
    true = link_series(truth, geometry, LinkRule(iou=rule.iou, max_gap=rule.max_gap)).lesions
    overlaps = _box_overlaps(predicted, true, iou)
    neighbours: dict[int, list[int]] = {}
    for i, j in link_edges(predicted, geometry, rule):
        neighbours.setdefault(i, []).append(j)
        neighbours.setdefault(j, []).append(i)
    order = sorted(range(len(predicted)), key=lambda i: (
        -predicted[i].score, predicted[i].slice_index, predicted[i].xyxy, i))
    groups, roots = Groups(len(predicted)), {}
    added = np.zeros(len(predicted), dtype=bool)
    counts = dict.fromkeys((*_COUNTS, "truth"), 0)
    thresholds: list[float] = []
    steps: dict[str, list[int]] = {name: [] for name in _COUNTS}

    def count(root: _Root, sign: int) -> None:
        counts[root.kind(rule.lone_min_score)] += sign

    for k, i in enumerate(order):
        box = predicted[i]
        added[i] = True
        roots[i] = _Root(box.score, 1, dict(overlaps[i]), i in ignored, (box.slice_index, i))
        count(roots[i], 1)
        for j in neighbours.get(i, ()):
            joined = groups.union(i, j) if added[j] else None
            if joined is None:
                continue
            keep, gone = (roots[joined[0]], roots.pop(joined[1]))
            count(keep, -1)
            count(gone, -1)
            best = min(keep, gone, key=lambda r: (-r.score, r.order))
            merged = _Root(best.score, keep.size + gone.size,
                           {t: max(keep.overlaps.get(t, 0.0), gone.overlaps.get(t, 0.0))
                            for t in keep.overlaps.keys() | gone.overlaps.keys()},
                           keep.ignored and gone.ignored, best.order)
            roots[joined[0]] = merged
            count(merged, 1)
        if k + 1 < len(order) and predicted[order[k + 1]].score == box.score:
            continue  # a tie: count once all records of this score are in
        hits = _hits([r for r in roots.values() if r.kind(rule.lone_min_score) == "truth"])
        thresholds.append(box.score)
        steps["hits"].append(hits)
        steps["false_positives"].append(counts["false_positives"])
        steps["ignored"].append(counts["ignored"])
        steps["dropped_lone"].append(counts["dropped_lone"])
        steps["lesions"].append(len(roots) - counts["dropped_lone"])
    return ScanCurve(patient, len(true), np.asarray(thresholds, dtype=float),
                     {name: np.asarray(values, dtype=int) for name, values in steps.items()})


def _geometry(indices: Mapping[int, str], positions: Mapping[str, float] | None
              ) -> SeriesGeometry | None:
    """Positions in mm by slice index when every slice of the scan has one."""
    if not positions or not indices or any(sop not in positions for sop in indices.values()):
        return None
    placed = [float("nan")] * (max(indices) + 1)
    for index, sop in indices.items():
        placed[index] = positions[sop]
    return SeriesGeometry(tuple(placed), series_spacing([positions[s] for s in indices.values()]),
                          None, None)


def split_curves(truth: SplitTruth, by_image: ByImage, *, rule: LinkRule, iou: float,
                 positions: Mapping[str, float] | None = None,
                 ignored: Collection[int] = ()) -> tuple[list[ScanCurve], str]:
    """Every scan of ``truth`` counted; ``positions``: SOP UID → mm along the series axis
    (None: link by slice index); ``ignored``: ``Detection.order`` of ignored records.
    Returns the curves and how slices were placed (``mm``, ``slice-index``, ``mixed``)."""
    scans: dict[str, list[int]] = {}
    for image_id, image in truth.images.items():
        scans.setdefault(image.scan, []).append(image_id)
    matches: list[ScanCurve] = []
    placed: set[str] = set()
    for scan in sorted(scans):
        ids = scans[scan]
        index_of = {i: _slice_index(truth, i) for i in ids}
        geometry = _geometry({index_of[i]: truth.images[i].sop_uid for i in ids}, positions)
        placed.add("mm" if geometry is not None else "slice-index")
        gt: list[SliceBox] = []
        dets: list[SliceBox] = []
        skip: set[int] = set()
        for i in ids:
            key = truth.images[i].sop_uid or str(i)
            gt += [SliceBox(key, index_of[i], b.xyxy, 1.0) for b in truth.images[i].boxes]
            for det in by_image.get(i, ()):
                if det.order in ignored:
                    skip.add(len(dets))
                dets.append(SliceBox(key, index_of[i], det.xyxy, det.score))
        patient = truth.images[ids[0]].patient_id
        matches.append(scan_curve(patient, gt, dets, skip, geometry, rule, iou))
    return matches, placed.pop() if len(placed) == 1 else "mixed" if placed else "slice-index"


def _slice_index(truth: SplitTruth, image_id: int) -> int:
    """An image's place in its series; without one (an old dataset), a place of its own
    that links to nothing (ids spaced beyond any gap)."""
    index = truth.images[image_id].slice_index
    return index if index is not None else 1000 * image_id


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def froc_points(curves: Sequence[ScanCurve]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds descending, FP per scan, sensitivity) over every distinct score, with
    (inf, 0, 0) first; empty when no true lesion or no scan is counted."""
    lesions = sum(c.true_lesions for c in curves)
    if not curves or lesions == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    thresholds = np.unique(np.concatenate([c.thresholds for c in curves]))[::-1]
    fps, hits = np.zeros(len(thresholds)), np.zeros(len(thresholds))
    for curve in curves:
        if not len(curve.thresholds):
            continue
        k = np.searchsorted(-curve.thresholds, -thresholds, side="right") - 1
        valid = k >= 0
        fps[valid] += curve.counts["false_positives"][k[valid]]
        hits[valid] += curve.counts["hits"][k[valid]]
    return (np.concatenate([[np.inf], thresholds]), np.concatenate([[0.0], fps / len(curves)]),
            np.concatenate([[0.0], hits / lesions]))


def lesion_sensitivities(curves: Sequence[ScanCurve]) -> list[float]:
    """Sensitivity at each of FROC_RATES: the highest before FP per scan first exceeds the
    rate, walking down the thresholds (NaN when no true lesion is counted)."""
    _, fp_rate, sensitivity = froc_points(curves)
    if len(fp_rate) == 0:
        return [float("nan")] * len(FROC_RATES)
    values = []
    for rate in FROC_RATES:
        over = np.nonzero(fp_rate > rate)[0]
        values.append(float(sensitivity[: over[0] if len(over) else len(fp_rate)].max()))
    return values


def _total(curves: Sequence[ScanCurve], threshold: float) -> dict[str, int]:
    total = dict.fromkeys(_COUNTS, 0)
    for curve in curves:
        for name, value in curve.at(threshold).items():
            total[name] += value
    return total


def lesion_section(truth: SplitTruth, by_image: ByImage, *, iou: float, conf: float,
                   rule: LinkRule, positions: Mapping[str, float] | None = None,
                   ignored: Collection[int] = ()) -> dict[str, Any]:
    """Lesion-level FROC and per-lesion sensitivity at ``conf`` (module docstring); the
    counts without a threshold are those of every record."""
    curves, linked_in = split_curves(truth, by_image, rule=rule, iou=iou,
                                     positions=positions, ignored=ignored)
    thresholds, fp_rate, sensitivity = froc_points(curves)
    values = lesion_sensitivities(curves)
    per_patient: dict[str, dict[str, int]] = {}
    for curve in curves:
        entry = per_patient.setdefault(curve.patient, {"lesions": 0, "found": 0})
        entry["lesions"] += curve.true_lesions
        entry["found"] += curve.at(conf)["hits"]
    total = sum(c.true_lesions for c in curves)
    every, at_conf = _total(curves, -np.inf), _total(curves, conf)
    return {
        "iou": iou,
        "link": rule.to_dict(),
        "linked_in": linked_in,
        "rates_fp_per_scan": list(FROC_RATES),
        "sensitivity": [_finite(v) for v in values],
        "mean": _finite(float(np.mean(values))),
        "scans": len(curves),
        "lesions": total,
        "predicted_lesions": every["lesions"],
        "hits": every["hits"],
        "false_positives": every["false_positives"],
        "ignored": every["ignored"],
        "dropped_lone": every["dropped_lone"],
        "conf": conf,
        "predicted_lesions_at_conf": at_conf["lesions"],
        "found_at_conf": at_conf["hits"],
        "sensitivity_at_conf": at_conf["hits"] / total if total else None,
        "false_positives_at_conf": at_conf["false_positives"],
        "per_patient": dict(sorted(per_patient.items())),
        "curve": {"threshold": [float(t) for t in thresholds[1:]],
                  "fp_per_scan": [float(v) for v in fp_rate],
                  "sensitivity": [float(v) for v in sensitivity]},
    }
