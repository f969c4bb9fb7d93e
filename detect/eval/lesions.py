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

Definitions (FROC as :mod:`detect.eval.froc`, with lesions in place of boxes):

- a predicted lesion *overlaps* a true lesion when one of its boxes and one of the true
  lesion's boxes lie on the same slice with IoU >= ``iou`` (0.1);
- predicted lesions in descending score order (a lesion's score is its best box's); each
  takes the not-yet-hit true lesion it overlaps most and is a *hit*; one overlapping
  only true lesions already hit is a *duplicate* (neither); one that overlaps none is a
  *false positive*, unless every one of its boxes is *ignored* (whole-series scoring: a
  box beside an annotated slice, see :mod:`detect.eval.series`), then it is neither;
- sensitivity = true lesions hit / true lesions; false positives per scan; sensitivity at
  1/8 ... 8 FP per scan and their mean;
- per-lesion sensitivity at the operating threshold ``conf``: true lesions hit by a
  predicted lesion scoring >= conf, overall and per patient.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detect.boxes import box_iou
from detect.eval.froc import DUPLICATE, FALSE_POSITIVE, FROC_RATES, HIT, FrocTable
from detect.eval.truth import Detection, SplitTruth
from detect.io.geometry import SeriesGeometry, series_spacing
from detect.lesions import Lesion, LinkRule, SliceBox, link_series

ByImage = Mapping[int, Sequence[Detection]]


@dataclass(frozen=True)
class LesionMatch:
    """One scan's lesions: predicted ones with their kind (HIT / DUPLICATE /
    FALSE_POSITIVE, in ``predicted`` order) and each true lesion's hitting score."""

    patient: str
    truth: tuple[Lesion, ...]
    predicted: tuple[Lesion, ...]
    kind: tuple[int, ...]
    ignored: int
    hit_score: tuple[float | None, ...]
    dropped_lone: int


def _overlap(predicted: Lesion, true: Lesion) -> float:
    """The best IoU of a predicted box and a true box on the same slice."""
    best = 0.0
    for key in {b.slice_key for b in predicted.boxes} & {b.slice_key for b in true.boxes}:
        mine = np.array([b.xyxy for b in predicted.boxes if b.slice_key == key], float)
        theirs = np.array([b.xyxy for b in true.boxes if b.slice_key == key], float)
        best = max(best, float(box_iou(mine, theirs).max()))
    return best


def match_scan(patient: str, truth: Sequence[SliceBox], predicted: Sequence[SliceBox],
               ignored: Collection[int], geometry: SeriesGeometry | None, rule: LinkRule,
               iou: float) -> LesionMatch:
    """Link one scan's boxes and match its lesions (module docstring); ``ignored``: the
    indices of ``predicted`` boxes that count neither way."""
    true = link_series(truth, geometry, LinkRule(iou=rule.iou, max_gap=rule.max_gap)).lesions
    linked = link_series(predicted, geometry, rule)
    hit: list[float | None] = [None] * len(true)
    kinds: list[int] = []
    skipped = 0
    for lesion in linked.lesions:  # descending score, ties in a fixed order
        overlaps = np.array([_overlap(lesion, t) for t in true], dtype=float)
        free = (overlaps >= iou) & np.array([h is None for h in hit], dtype=bool)
        if free.any():
            g = int(np.argmax(np.where(free, overlaps, -1.0)))
            hit[g] = lesion.score
            kinds.append(HIT)
        elif (overlaps >= iou).any():
            kinds.append(DUPLICATE)
        elif all(i in ignored for i in lesion.indices):
            kinds.append(DUPLICATE)
            skipped += 1
        else:
            kinds.append(FALSE_POSITIVE)
    return LesionMatch(patient, tuple(true), linked.lesions, tuple(kinds), skipped,
                       tuple(hit), len(linked.dropped))


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


def match_split(truth: SplitTruth, by_image: ByImage, *, rule: LinkRule, iou: float,
                positions: Mapping[str, float] | None = None,
                ignored: Collection[int] = ()) -> tuple[list[LesionMatch], str]:
    """Every scan of ``truth`` matched; ``positions``: SOP UID → mm along the series axis
    (None: link by slice index); ``ignored``: ``Detection.order`` of ignored records.
    Returns the matches and how slices were placed (``mm``, ``slice-index``, ``mixed``)."""
    scans: dict[str, list[int]] = {}
    for image_id, image in truth.images.items():
        scans.setdefault(image.scan, []).append(image_id)
    matches, placed = [], set()
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
        matches.append(match_scan(patient, gt, dets, skip, geometry, rule, iou))
    return matches, placed.pop() if len(placed) == 1 else "mixed" if placed else "slice-index"


def _slice_index(truth: SplitTruth, image_id: int) -> int:
    """An image's place in its series; without one (an old dataset), a place of its own
    that links to nothing (ids spaced beyond any gap)."""
    index = truth.images[image_id].slice_index
    return index if index is not None else 1000 * image_id


def lesion_table(matches: Sequence[LesionMatch], patients: Sequence[str]) -> FrocTable:
    """The matches as a FrocTable (lesions in place of boxes), patients as ``patients``."""
    index_of = {p: i for i, p in enumerate(patients)}
    lesions, scans = np.zeros(len(patients)), np.zeros(len(patients))
    scores, kinds, owner = [], [], []
    for match in matches:
        p = index_of[match.patient]
        lesions[p] += len(match.truth)
        scans[p] += 1
        for lesion, kind in zip(match.predicted, match.kind):
            scores.append(lesion.score)
            kinds.append(kind)
            owner.append(p)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
    return FrocTable(np.asarray(scores, float)[order], np.asarray(kinds, int)[order],
                     np.asarray(owner, int)[order], lesions, scans)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def lesion_section(truth: SplitTruth, by_image: ByImage, *, iou: float, conf: float,
                   rule: LinkRule, positions: Mapping[str, float] | None = None,
                   ignored: Collection[int] = ()) -> dict[str, Any]:
    """Lesion-level FROC and per-lesion sensitivity at ``conf`` (module docstring)."""
    matches, linked_in = match_split(truth, by_image, rule=rule, iou=iou,
                                     positions=positions, ignored=ignored)
    table = lesion_table(matches, truth.patients)
    fp_rate, sensitivity = table.curve()
    values = table.sensitivities()
    per_patient: dict[str, dict[str, int]] = {}
    for match in matches:
        entry = per_patient.setdefault(match.patient, {"lesions": 0, "found": 0})
        entry["lesions"] += len(match.truth)
        entry["found"] += sum(1 for s in match.hit_score if s is not None and s >= conf)
    total = sum(e["lesions"] for e in per_patient.values())
    found = sum(e["found"] for e in per_patient.values())
    kinds = np.array([k for m in matches for k in m.kind], dtype=int)
    return {
        "iou": iou,
        "link": rule.to_dict(),
        "linked_in": linked_in,
        "rates_fp_per_scan": list(FROC_RATES),
        "sensitivity": [_finite(v) for v in values],
        "mean": _finite(float(np.mean(values))),
        "scans": len(matches),
        "lesions": total,
        "predicted_lesions": len(kinds),
        "hits": int((kinds == HIT).sum()),
        "false_positives": int((kinds == FALSE_POSITIVE).sum()),
        "duplicates": int((kinds == DUPLICATE).sum()) - sum(m.ignored for m in matches),
        "ignored": sum(m.ignored for m in matches),
        "dropped_lone": sum(m.dropped_lone for m in matches),
        "conf": conf,
        "sensitivity_at_conf": found / total if total else None,
        "found_at_conf": found,
        "false_positives_at_conf": sum(
            1 for m in matches for x, k in zip(m.predicted, m.kind)
            if k == FALSE_POSITIVE and x.score >= conf),
        "per_patient": dict(sorted(per_patient.items())),
        "curve": {"fp_per_scan": [float(v) for v in fp_rate],
                  "sensitivity": [float(v) for v in sensitivity]},
    }
