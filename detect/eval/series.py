"""Scoring predictions over every slice of whole CT series, against the archive's VOC XML.

``detect eval`` scores a converted split: only the slices ``detect convert`` wrote (the
annotated ones, plus ``--negatives``). A clinical reader sees every slice, so this module
scores ``detect predict`` run on a patient's DICOM folders: every slice it predicted (its
``slices.csv``) is an image, and the boxes come straight from the annotation folder
(``<ann>/<patient>/<SOPInstanceUID>.xml``), matched by SOP Instance UID.

Class-agnostic (every VOC object is one tumour box), and with the evaluator's own
definitions (:mod:`detect.eval.froc`, :mod:`detect.eval.coco`): a *scan* is one CT series,
a lesion one box on one slice, a hit a detection with IoU >= ``iou`` (0.1).

Unannotated slices next to annotated ones: Lung-PET-CT-Dx boxes the tumour on most, not
all, of the slices it shows (the first and last slices of its extent, and some in
between, carry no XML). A detection on an unannotated slice that lies within
``near_slices`` slices (same series, by geometric slice order) of an annotated slice and
overlaps one of that annotated slice's boxes (IoU >= ``iou``) is therefore *ignored*:
neither a hit nor a false positive, and counted as ``ignored``. Every other detection on
an unannotated slice is a false positive. ``near_slices=0`` is the strict count (every
detection off an annotated slice is a false positive).

Reported: AP50 and AP at IoU 0.1 over the annotated slices only (pycocotools, as ``detect
eval``), AP50 over all slices (unannotated slices have no box, so their detections are
false positives; ignored ones removed), FROC sensitivity at 1/8 ... 8 false positives per
series, which patients are *found* at the operating threshold ``conf``, and the same at
lesion level (:mod:`detect.eval.lesions`): boxes and detections linked into 3D lesions by
each slice's position in mm (slices.csv's ``slice_position_mm``; by slice index when it
is absent), a predicted lesion of ignored detections only counting neither way.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detect.boxes import XYXY, box_iou
from detect.errors import AnnotationError, DetectError
from detect.eval.coco import coco_gt, coco_results, cocoeval_precision, mean_ap
from detect.eval.froc import FROC_RATES, froc_table, match_lesions, patients_found
from detect.eval.lesions import lesion_section
from detect.eval.truth import Detection, GtBox, GtImage, SplitTruth, assign_predictions
from detect.histology import normalise_label, short_patient_id
from detect.io.voc import parse_voc, slice_uid_of
from detect.io.walk import walk_tree
from detect.lesions import LinkRule
from detect.predictions import DEFAULT_CONF, Prediction, read_predictions

log = logging.getLogger(__name__)

#: Columns of ``detect predict``'s slices.csv that scoring needs.
SLICE_FIELDS = ("patient_id", "series_instance_uid", "sop_instance_uid", "slice_index")


@dataclass(frozen=True)
class PredictedSlice:
    """One slice that was predicted on; ``slice_index`` is its place in its series,
    ``path`` its DICOM file (as detect predict read it; "" when unknown),
    ``position_mm`` its position along the series axis (None when unknown)."""

    patient_id: str
    series_instance_uid: str
    sop_instance_uid: str
    slice_index: int
    path: str = ""
    position_mm: float | None = None


@dataclass(frozen=True)
class AnnotationBoxes:
    """Tumour boxes (xyxy px) by SOP Instance UID, and the XML files that gave none."""

    boxes: dict[str, tuple[XYXY, ...]]
    skipped: tuple[tuple[str, str], ...] = ()  # (relative path, kind: detail)


def read_slices_csv(path: Path) -> list[PredictedSlice]:
    """The slices of a ``detect predict`` output folder (its ``slices.csv``).

    Raises:
        DetectError: the file is missing or lacks the columns detect predict writes.
    """
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise DetectError(f"cannot read {path} ({exc.strerror}); pass the slices.csv "
                          f"that detect predict wrote") from None
    try:
        return [PredictedSlice(str(r["patient_id"]), str(r["series_instance_uid"]),
                               str(r["sop_instance_uid"]), int(r["slice_index"]),
                               str(r.get("path") or ""), _position(r.get("slice_position_mm")))
                for r in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise DetectError(f"{path}: expected detect predict's columns {', '.join(SLICE_FIELDS)}"
                          f" with an integer slice_index ({exc!r})") from None


def _position(text: str | None) -> float | None:
    """slice_position_mm: a finite number, or None (empty, or written before it existed).

    Raises:
        ValueError: text that is not a number.
    """
    if not text:
        return None
    value = float(text)
    return value if np.isfinite(value) else None


def read_annotation_boxes(annotation_root: Path) -> AnnotationBoxes:
    """Every VOC XML under ``annotation_root`` → its boxes, keyed by the slice's
    SOPInstanceUID in the file's name (:func:`detect.io.voc.slice_uid_of`: the archive's
    ``<SOPInstanceUID>.xml``, or predict's names). Objects that are not a
    histology letter and unreadable files are skipped and listed, never fatal."""
    boxes: dict[str, tuple[XYXY, ...]] = {}
    skipped: list[tuple[str, str]] = []
    walked = walk_tree(annotation_root)
    skipped.extend((str(skip.path), f"{skip.kind}: {skip.detail}") for skip in walked.skipped)
    for path in walked.files:
        if path.suffix.lower() != ".xml":
            continue
        relative = str(path.relative_to(annotation_root))
        try:
            voc = parse_voc(path)
        except AnnotationError as exc:
            skipped.append((relative, f"{exc.kind}: {exc.detail}"))
            continue
        kept = []
        for obj in voc.objects:
            try:
                normalise_label(obj.name)
            except AnnotationError as exc:
                skipped.append((relative, f"{exc.kind}: {exc.detail}"))
                continue
            kept.append(obj.xyxy)
        if kept:
            uid = slice_uid_of(path)
            boxes[uid] = boxes.get(uid, ()) + tuple(kept)
    return AnnotationBoxes(boxes, tuple(skipped))


def series_truth(
    slices: Sequence[PredictedSlice], boxes: Mapping[str, Sequence[XYXY]], *,
    annotated_only: bool = False,
) -> SplitTruth:
    """The slices as a one-class (``tumor``) ground truth the evaluator's functions take;
    image ids 1..N in (patient, series, slice index) order. ``annotated_only``: only the
    slices that have boxes."""
    images: dict[int, GtImage] = {}
    letters: dict[str, str | None] = {}
    ordered = sorted(slices, key=lambda s: (s.patient_id, s.series_instance_uid, s.slice_index))
    for one in ordered:
        patient = short_patient_id(one.patient_id)
        gt = tuple(boxes.get(one.sop_instance_uid, ()))
        if annotated_only and not gt:
            continue
        letters[patient] = _letter(patient)
        image_id = len(images) + 1
        images[image_id] = GtImage(
            image_id=image_id, file_name=one.sop_instance_uid, width=0, height=0,
            patient_id=patient, scan=one.series_instance_uid, sop_uid=one.sop_instance_uid,
            boxes=tuple(GtBox(0, (float(b[0]), float(b[1]), float(b[2]), float(b[3])), 0,
                              letters[patient]) for b in gt),
            slice_index=one.slice_index,
        )
    return SplitTruth("series", ("tumor",), "tumor", images, letters, coco={})


def _letter(patient: str) -> str | None:
    letter = patient[:1].upper()
    return letter if letter in ("A", "B", "E", "G") else None


def near_annotation_ignored(
    slices: Sequence[PredictedSlice], boxes: Mapping[str, Sequence[XYXY]],
    predictions: Sequence[Prediction], *, near_slices: int, iou: float,
) -> tuple[list[Prediction], list[Prediction]]:
    """Split ``predictions`` into (kept, ignored) by the rule in the module docstring."""
    if near_slices <= 0:
        return list(predictions), []
    annotated: dict[str, list[tuple[int, Sequence[XYXY]]]] = {}
    position: dict[str, PredictedSlice] = {}
    for one in slices:
        position[one.sop_instance_uid] = one
        if boxes.get(one.sop_instance_uid):
            annotated.setdefault(one.series_instance_uid, []).append(
                (one.slice_index, boxes[one.sop_instance_uid]))
    kept: list[Prediction] = []
    ignored: list[Prediction] = []
    for pred in predictions:
        where = position.get(pred.sop_instance_uid)
        if where is None or boxes.get(pred.sop_instance_uid):
            kept.append(pred)
            continue
        nearby = [np.asarray(b, dtype=float) for index, group in
                  annotated.get(where.series_instance_uid, [])
                  if abs(index - where.slice_index) <= near_slices for b in group]
        overlap = box_iou(np.asarray([pred.xyxy], dtype=float),
                             np.asarray(nearby, dtype=float).reshape(-1, 4))
        (ignored if overlap.size and overlap.max() >= iou else kept).append(pred)
    return kept, ignored


@dataclass(frozen=True)
class SeriesScore:
    """The figures of :func:`score_series` (module docstring); ``to_dict`` for JSON."""

    ap50_annotated: float | None
    ap10_annotated: float | None
    ap50_all_slices: float | None
    froc_rates: tuple[float, ...]
    sensitivity: tuple[float | None, ...]
    patients_found: dict[str, bool]
    conf: float
    iou: float
    near_slices: int
    counts: dict[str, int] = field(default_factory=dict)
    lesions: dict[str, Any] = field(default_factory=dict)

    def sensitivity_at(self, fp_per_series: float) -> float | None:
        """FROC sensitivity at one of ``froc_rates``."""
        return self.sensitivity[self.froc_rates.index(fp_per_series)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ap50_annotated": self.ap50_annotated,
            "ap10_annotated": self.ap10_annotated,
            "ap50_all_slices": self.ap50_all_slices,
            "froc": {"rates_fp_per_series": list(self.froc_rates),
                     "sensitivity": list(self.sensitivity)},
            "patients_found": dict(self.patients_found),
            "settings": {"conf": self.conf, "iou": self.iou, "near_slices": self.near_slices},
            "counts": dict(self.counts),
            "lesions": dict(self.lesions),
        }


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _ap(truth: SplitTruth, by_image: Mapping[int, Sequence[Detection]], iou: float
        ) -> float | None:
    if not any(image.boxes for image in truth.images.values()):
        return None
    precision = cocoeval_precision(coco_gt(truth, agnostic=True),
                                   coco_results(by_image, agnostic=True), [iou])
    return _finite(mean_ap(precision))


def score_series(
    slices: Sequence[PredictedSlice], annotations: AnnotationBoxes,
    predictions: Sequence[Prediction], *, conf: float = DEFAULT_CONF, iou: float = 0.1,
    near_slices: int = 2, link: LinkRule | None = None,
) -> SeriesScore:
    """Score predictions on every slice of whole series (module docstring); ``link``: how
    boxes become lesions (None: the default rule).

    Predictions whose slice is not in ``slices`` are left out and counted; so are boxes
    whose slice was not predicted (``boxes_on_unpredicted_slices``).
    """
    boxes = annotations.boxes
    kept, ignored = near_annotation_ignored(slices, boxes, predictions,
                                            near_slices=near_slices, iou=iou)
    every = series_truth(slices, boxes)
    assigned = assign_predictions(every, kept)
    matches = match_lesions(every, assigned.by_image, iou)
    table = froc_table(every, assigned.by_image, matches, every.patients)
    annotated = series_truth(slices, boxes, annotated_only=True)
    annotated_sops = {image.sop_uid for image in annotated.images.values()}
    on_annotated = assign_predictions(
        annotated, [p for p in kept if p.sop_instance_uid in annotated_sops]).by_image
    predicted_sops = {s.sop_instance_uid for s in slices}
    counts = {
        "series": int(table.scans.sum()),
        "slices": len(every.images),
        "annotated_slices": len(annotated.images),
        "boxes": int(table.lesions.sum()),
        "boxes_on_unpredicted_slices": sum(len(b) for sop, b in boxes.items()
                                           if sop not in predicted_sops),
        "predictions": len(predictions),
        "ignored_near_annotation": len(ignored),
        "predictions_outside_slices": assigned.outside_split,
        "xml_skipped": len(annotations.skipped),
    }
    return SeriesScore(
        ap50_annotated=_ap(annotated, on_annotated, 0.5),
        ap10_annotated=_ap(annotated, on_annotated, 0.1),
        ap50_all_slices=_ap(every, assigned.by_image, 0.5),
        froc_rates=FROC_RATES,
        sensitivity=tuple(_finite(v) for v in table.sensitivities()),
        patients_found=patients_found(every, matches, conf),
        conf=conf, iou=iou, near_slices=near_slices, counts=counts,
        lesions=_lesions(slices, every, predictions, ignored, conf=conf, iou=iou,
                         link=link or LinkRule()),
    )


def _lesions(slices: Sequence[PredictedSlice], every: SplitTruth,
             predictions: Sequence[Prediction], ignored: Sequence[Prediction], *,
             conf: float, iou: float, link: LinkRule) -> dict[str, Any]:
    """The lesion section: every record linked (the ignored ones flagged, not removed)."""
    flagged = {id(p) for p in ignored}
    orders = {i for i, p in enumerate(predictions) if id(p) in flagged}
    positions = {s.sop_instance_uid: s.position_mm for s in slices if s.position_mm is not None}
    by_image = assign_predictions(every, predictions).by_image
    return lesion_section(every, by_image, iou=iou, conf=conf, rule=link,
                          positions=positions, ignored=orders)


@dataclass(frozen=True)
class PredictedSeries:
    """What ``detect predict`` wrote for whole series (its slices.csv and predictions.json)
    and the annotation boxes of those series: everything :func:`score_series` reads."""

    slices: list[PredictedSlice]
    predictions: list[Prediction]
    annotations: AnnotationBoxes

    def score(self, *, conf: float, near_slices: int = 2, iou: float = 0.1) -> SeriesScore:
        return score_series(self.slices, self.annotations, self.predictions, conf=conf,
                            iou=iou, near_slices=near_slices)


def read_predicted_series(slices_csv: Path, predictions_json: Path,
                          annotation_root: Path) -> PredictedSeries:
    """Read detect predict's slices.csv and predictions.json and the VOC boxes under
    ``annotation_root``.

    Raises:
        DetectError: either predict file is missing or not detect predict's.
    """
    return PredictedSeries(read_slices_csv(slices_csv), read_predictions(predictions_json),
                           read_annotation_boxes(annotation_root))
