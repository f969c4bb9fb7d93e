"""3D lesions in ``detect predict``: each series' boxes (after the lung field) linked into
lesion candidates (:mod:`detect.lesions`), written as ``lesions.json`` and ``lesions.csv``.

A lesion is numbered within its series by descending score (``lesion`` 1 is the series'
most likely finding); the DICOM SR uses the same numbers (``lesion N``). A lone box the
rule drops (``LinkRule.lone_min_score``) is removed from every output, as a box outside the
lung field is, and counted (``dropped_lone`` in lesions.json).

lesions.json::

    {"format": "detect-lesions", "version": 1, "link": {rule}, "lung_field": {rule} | null,
     "series": [{"series_instance_uid", "patient_id", "dicom_patient_id", "linked_in",
                 "lung_field",
                 "dropped_lone", "lesions": [{"lesion", "score", "slice_indices",
                 "box_mm", "longest_axial_diameter_mm", "craniocaudal_extent_mm",
                 "boxes": [{"sop_instance_uid", "slice_index", "xyxy", "score"}]}]}]}

``box_mm`` is patient LPS (x1, y1, z1, x2, y2, z2) mm; a measurement the series' geometry
does not give is null (``linked_in`` says ``slice-index`` when slices had no position).
``patient_id`` is the short ID, ``dicom_patient_id`` the header's PatientID (as in
summary.csv and predictions.json).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detect.io.atomic import write_json
from detect.io.csvfile import write_csv
from detect.io.geometry import SeriesGeometry
from detect.lesions import Lesion, LinkRule, SliceBox, link_series
from detect.predict.writers import SliceResult
from detect.predictions import Prediction

LESIONS_FORMAT = "detect-lesions"
_BOX_COLUMNS = ("x1_mm", "y1_mm", "z1_mm", "x2_mm", "y2_mm", "z2_mm")
LESION_COLUMNS = (
    "patient_id",
    "dicom_patient_id",
    "series_instance_uid",
    "lesion",
    "score",
    "boxes",
    "slices",
    "first_slice_index",
    "last_slice_index",
    "longest_axial_diameter_mm",
    "craniocaudal_extent_mm",
    *_BOX_COLUMNS,
    "best_sop_instance_uid",
)


@dataclass(frozen=True)
class SeriesLesions:
    """The lesions of one series; ``predictions[i]`` is the record of the linker's box
    i (what :attr:`detect.lesions.Lesion.indices` point at)."""

    series_instance_uid: str
    patient_id: str
    linked_in: str
    lung_field: str
    lesions: tuple[Lesion, ...]
    predictions: tuple[Prediction, ...]
    dropped_lone: int
    dicom_patient_id: str = ""

    def lesion_predictions(self, lesion: Lesion) -> list[Prediction]:
        """The records of a lesion's boxes, in its order (by slice)."""
        return [self.predictions[i] for i in lesion.indices]


def link_results(series_uid: str, patient_id: str, geometry: SeriesGeometry,
                 results: Sequence[SliceResult], rule: LinkRule, lung_field: str,
                 dicom_patient_id: str = "") -> SeriesLesions:
    """Link one series' boxes; the boxes of dropped lone lesions are removed from
    ``results`` (their slices' predictions). ``patient_id`` is the short ID,
    ``dicom_patient_id`` the header's PatientID."""
    ordered = sorted(results, key=lambda r: r.slice_index)
    pairs = [(r, p) for r in ordered for p in r.predictions]
    boxes = [SliceBox(p.sop_instance_uid, r.slice_index, p.xyxy, p.score) for r, p in pairs]
    linked = link_series(boxes, geometry, rule)
    drop = {id(pairs[i][1]) for lesion in linked.dropped for i in lesion.indices}
    if drop:
        for result in ordered:
            result.predictions = [p for p in result.predictions if id(p) not in drop]
    return SeriesLesions(series_uid, patient_id, linked.linked_in, lung_field, linked.lesions,
                         tuple(p for _, p in pairs), len(linked.dropped), dicom_patient_id)


def _round(value: float | None) -> float | None:
    """4 decimals; None for None and for a non-finite number (JSON has none)."""
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def _lesion_json(number: int, lesion: Lesion) -> dict[str, Any]:
    return {
        "lesion": number,
        "score": _round(lesion.score),
        "slice_indices": list(lesion.slice_indices),
        "box_mm": None if lesion.box_mm is None else [_round(v) for v in lesion.box_mm],
        "longest_axial_diameter_mm": _round(lesion.diameter_mm),
        "craniocaudal_extent_mm": _round(lesion.extent_mm),
        "boxes": [{"sop_instance_uid": b.slice_key, "slice_index": b.slice_index,
                   "xyxy": [_round(v) for v in b.xyxy], "score": _round(b.score)}
                  for b in lesion.boxes],
    }


def lesions_document(found: Sequence[SeriesLesions], link: LinkRule,
                     lung_field: Mapping[str, Any] | None) -> dict[str, Any]:
    """lesions.json's content (module docstring)."""
    return {
        "format": LESIONS_FORMAT,
        "version": 1,
        "link": link.to_dict(),
        "lung_field": None if lung_field is None else dict(lung_field),
        "series": [
            {"series_instance_uid": s.series_instance_uid, "patient_id": s.patient_id,
             "dicom_patient_id": s.dicom_patient_id, "linked_in": s.linked_in,
             "lung_field": s.lung_field, "dropped_lone": s.dropped_lone,
             "lesions": [_lesion_json(n, x) for n, x in enumerate(s.lesions, start=1)]}
            for s in found
        ],
    }


def lesion_rows(found: Sequence[SeriesLesions]) -> list[dict[str, object]]:
    """lesions.csv: one row per lesion."""
    rows: list[dict[str, object]] = []
    for series in found:
        for number, lesion in enumerate(series.lesions, start=1):
            box: Sequence[float | None] = lesion.box_mm or (None,) * 6
            best = max(lesion.boxes, key=lambda b: b.score)
            rows.append({
                "patient_id": series.patient_id,
                "dicom_patient_id": series.dicom_patient_id,
                "series_instance_uid": series.series_instance_uid,
                "lesion": number,
                "score": f"{lesion.score:.4f}",
                "boxes": len(lesion.boxes),
                "slices": len(lesion.slice_indices),
                "first_slice_index": lesion.slice_indices[0],
                "last_slice_index": lesion.slice_indices[-1],
                "longest_axial_diameter_mm": _cell(lesion.diameter_mm),
                "craniocaudal_extent_mm": _cell(lesion.extent_mm),
                **{name: _cell(value) for name, value in zip(_BOX_COLUMNS, box)},
                "best_sop_instance_uid": best.slice_key,
            })
    return rows


def _cell(value: float | None) -> object:
    return "" if value is None or not math.isfinite(value) else round(float(value), 2)


def write_lesions(out: Path, found: Sequence[SeriesLesions], link: LinkRule,
                  lung_field: Mapping[str, Any] | None) -> dict[str, Path]:
    """``out/lesions.json`` and ``out/lesions.csv`` (atomically)."""
    files = {"lesions_json": out / "lesions.json", "lesions_csv": out / "lesions.csv"}
    write_json(files["lesions_json"], lesions_document(found, link, lung_field))
    write_csv(files["lesions_csv"], LESION_COLUMNS, lesion_rows(found))
    return files
