"""What ``detect predict`` writes: VOC XML per slice, PNG overlays, CSV summaries.

Every path is built from sanitised names under the output folder; nothing read from a
DICOM header (patient IDs, UIDs) can make a file land outside it.

Layout of ``OUT``::

    predictions.json                 contract 4 (detect.predictions.write_predictions)
    voc/<patient>/<slice>.xml        one per slice with findings (TCIA Annotation tree,
                                     LabelImg style; <score> added per object), naming
    voc/<patient>/<slice>.png        the slice in the lung window, grey, no boxes drawn
    png/<patient>/<slice>.png        overlays: lung window, boxes, label and score
    summary.csv                      one row per series and one per patient (with
                                     --histology: the head's call per row; boxes dropped
                                     outside the lung field, lesions, the field's status)
    slices.csv                       one row per slice read (and its boxes dropped outside
                                     the lung field)
    lesions.json, lesions.csv        3D lesion candidates (detect.predict.lesions)
    skipped.csv                      every file not predicted on, with its reason

``<patient>`` is the short patient ID (``A0002``: the annotation archive's folder name,
``patient_id`` everywhere); the header's PatientID (``Lung_Dx-A0002``, what the SR and a
PACS show) is ``dicom_patient_id`` in the records and CSVs. ``<slice>`` is
:func:`slice_stem`: series, position in the series and InstanceNumber before the
SOPInstanceUID, so a folder lists its files series by series in slice order.

CSV cells from headers and file names never start a spreadsheet formula
(:func:`detect.io.csvfile.write_csv`, re-exported here). Files are written atomically, each
after its path went into OUT's ledger (:mod:`detect.predict.outdir` owns the folder).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detect.boxes import xyxy_to_voc
from detect.histology import LETTERS
from detect.io.atomic import write_bytes
from detect.io.csvfile import write_csv
from detect.io.draw import draw_boxes, grey_to_rgb
from detect.io.paths import inside, safe_component
from detect.io.png import encode_png
from detect.io.voc import VocObject, voc_xml_bytes
from detect.predict.histology import head_call
from detect.predictions import Prediction, histology_argmax

__all__ = ["write_csv"]  # the CSV writer predict uses, from detect.io.csvfile

_COLOURS = ((255, 200, 0), (0, 120, 255), (80, 220, 80), (255, 80, 200), (255, 80, 0))  # RGB
SUMMARY_COLUMNS = (
    "level",
    "patient_id",
    "dicom_patient_id",
    "series_instance_uid",
    "series_description",
    "slices_read",
    "slices_with_findings",
    "detections",
    "max_score",
    "max_score_sop_instance_uid",
    "most_likely_histology",
    "histology_head",
    "histology_head_probability",
    "score_threshold",
    "outside_lung",
    "lesions",
    "lung_field",
)
SLICE_COLUMNS = (
    "patient_id",
    "dicom_patient_id",
    "series_instance_uid",
    "sop_instance_uid",
    "slice_index",
    "instance_number",
    "detections",
    "max_score",
    "top_label",
    "path",
    "outside_lung",
    "slice_position_mm",
)


def safe_name(text: str, fallback: str = "unknown") -> str:
    """A single path component from a data value (a patient ID, a UID): the value itself
    when it is safe, else its safe characters and a hash, so distinct values never share
    a file (:func:`detect.io.paths.safe_component`); ``fallback`` for an empty value."""
    return safe_component(text.strip() or fallback)


@dataclass
class SliceResult:
    """One slice that was read and predicted on. ``patient_id``: the short ID
    (:func:`detect.histology.short_patient_id`), ``dicom_patient_id``: the header's
    PatientID; ``slice_index``: its place in the series' geometric order (0 first);
    ``outside_lung``: boxes dropped because they lie outside the series' lung field
    (:mod:`detect.predict.lungs`); ``position_mm``: the slice's position along its
    series' axis (None: unknown); ``series_number``: the header's SeriesNumber."""

    patient_id: str
    series_instance_uid: str
    sop_instance_uid: str
    slice_index: int
    instance_number: int | None
    path: str
    width: int
    height: int
    predictions: list[Prediction] = field(default_factory=list)
    outside_lung: int = 0
    position_mm: float | None = None
    dicom_patient_id: str = ""
    series_number: int | None = None

    @property
    def max_score(self) -> float:
        return max((p.score for p in self.predictions), default=0.0)


#: Called with a file's path relative to OUT before the file is written (the ledger).
Record = Callable[[str], None]


def _write(out: Path, parts: tuple[str, str, str], data: bytes, record: Record | None) -> Path:
    path = inside(out, *parts)
    if record is not None:
        record("/".join(parts))
    write_bytes(path, data)
    return path


def _number(value: int | None) -> str:
    """A header number zero-padded to 4 digits for sorting; ``x`` when absent or not a
    plausible count (negative, over 8 digits)."""
    return f"{value:04d}" if value is not None and 0 <= value < 10**8 else "x"


def slice_stem(result: SliceResult) -> str:
    """The file name (without suffix) of a slice's VOC, PNG and overlay files:
    ``s<SeriesNumber>-<series hash>_<slice index>_i<InstanceNumber>_<SOPInstanceUID>``,
    e.g. ``s0002-4e1f0a_0017_i0014_1.3.6.1.4.1.14519.5.2.1.6655...``. The series part
    sorts series by number and keeps two series of one number (two studies) apart (the
    hash is the first 6 hex digits of the SeriesInstanceUID's SHA-1); the slice index
    (slices.csv's ``slice_index``, 0 first) sorts slices in geometric order, which
    InstanceNumber need not follow; the InstanceNumber is what a viewer shows. Every part
    is digits, ``x`` or :func:`safe_name`, so no header value becomes a path unescaped."""
    series = hashlib.sha1(result.series_instance_uid.encode("utf-8", "surrogatepass"))
    return (f"s{_number(result.series_number)}-{series.hexdigest()[:6]}_"
            f"{max(result.slice_index, 0):04d}_i{_number(result.instance_number)}_"
            f"{safe_name(result.sop_instance_uid)}")


def write_voc(out: Path, result: SliceResult, grey: np.ndarray,
              record: Record | None = None) -> Path:
    """``out/voc/<patient>/<slice>.xml`` for a slice with findings and, beside it, the
    image it names: ``<slice>.png``, the slice in the lung window (grey, no boxes), so
    LabelImg opens the folder and the boxes can be corrected on what a reader sees. The
    image is written first, each file atomically after ``record`` was told its path."""
    folder, stem = safe_name(result.patient_id), slice_stem(result)
    image = f"{stem}.png"
    _write(out, ("voc", folder, image), encode_png(grey), record)
    objects = [VocObject(name=p.label, xyxy=p.xyxy) for p in result.predictions]
    data = voc_xml_bytes(
        objects, result.width, result.height, 1, folder=folder, filename=image, path=image,
        scores=[p.score for p in result.predictions],
    )
    return _write(out, ("voc", folder, f"{stem}.xml"), data, record)


def draw_overlay(lung: np.ndarray, predictions: Sequence[Prediction]) -> np.ndarray:
    """Lung-window slice (H × W uint8) with boxes, labels and scores drawn (RGB)."""
    size = max(lung.shape[:2])
    boxes = [(xyxy_to_voc(p.xyxy), _COLOURS[(p.category_id - 1) % len(_COLOURS)],
              f"{p.label} {p.score:.2f}") for p in sorted(predictions, key=lambda q: q.score)]
    return draw_boxes(grey_to_rgb(lung), boxes, width=max(1, round(size / 256)),
                      text_px=max(10, round(size / 40)))


def write_overlay(out: Path, result: SliceResult, lung: np.ndarray,
                  record: Record | None = None) -> Path:
    """``out/png/<patient>/<slice>.png``: the overlay of one slice (named as
    :func:`write_voc`'s files)."""
    parts = ("png", safe_name(result.patient_id), f"{slice_stem(result)}.png")
    return _write(out, parts, encode_png(draw_overlay(lung, result.predictions)), record)


def _histology(predictions: Sequence[Prediction]) -> str:
    vectors = [p for p in predictions if p.histology]
    if vectors:
        total: dict[str, float] = {}
        for p in vectors:
            for letter, value in (p.histology or {}).items():
                total[letter] = total.get(letter, 0.0) + p.score * value
        return histology_argmax(total) or ""
    best = max(predictions, key=lambda p: p.score, default=None)
    return best.label if best is not None and best.label in LETTERS else ""


def _summary_row(
    level: str, patient: str, series: str, description: str, slices: Sequence[SliceResult],
    head: bool, threshold: float, lesions: int | str = "", lung_field: str = "",
) -> dict[str, object]:
    predictions = [p for s in slices for p in s.predictions]
    top = max(slices, key=lambda s: s.max_score, default=None)
    call, probability = head_call(predictions) if head else ("", None)
    return {
        "level": level,
        "patient_id": patient,
        "dicom_patient_id": dicom_ids(slices),
        "series_instance_uid": series,
        "series_description": description,
        "slices_read": len(slices),
        "slices_with_findings": sum(1 for s in slices if s.predictions),
        "detections": len(predictions),
        "max_score": f"{top.max_score:.4f}" if top is not None and predictions else "",
        "max_score_sop_instance_uid": top.sop_instance_uid if top and predictions else "",
        "most_likely_histology": _histology(predictions),
        "histology_head": call,
        "histology_head_probability": "" if probability is None else f"{probability:.4f}",
        "score_threshold": threshold,
        "outside_lung": sum(s.outside_lung for s in slices),
        "lesions": lesions,
        "lung_field": lung_field,
    }


def dicom_ids(results: Sequence[SliceResult]) -> str:
    """The header PatientIDs of ``results`` (one, or several joined by ``;`` where
    different header IDs have one short ID)."""
    return ";".join(sorted({r.dicom_patient_id for r in results}))


def summary_rows(
    results: Sequence[SliceResult], descriptions: Mapping[str, str], *, threshold: float,
    head: bool = False, lesions: Mapping[str, int] | None = None,
    lung_field: Mapping[str, str] | None = None,
) -> list[dict[str, object]]:
    """One row per series (``level`` = series), then one per patient (``level`` = patient);
    ``score_threshold`` is the operating threshold the detections were kept at.
    With ``head`` (predict --histology), ``histology_head`` is the head's call and
    ``histology_head_probability`` its mean probability (``none`` and empty without
    detections; see :func:`detect.predict.histology.head_call`); else both are empty.
    ``lesions`` and ``lung_field``: per series UID, the lesion count and the field's
    status (:mod:`detect.predict.lungs`); a patient row sums the lesions. Rows are keyed
    by the short ``patient_id``; ``dicom_patient_id`` is the header's PatientID."""
    lesions, lung_field = lesions or {}, lung_field or {}
    by_series: dict[tuple[str, str], list[SliceResult]] = {}
    for result in results:
        by_series.setdefault((result.patient_id, result.series_instance_uid), []).append(result)
    rows = [
        _summary_row("series", patient, uid, descriptions.get(uid, ""), slices, head,
                     threshold, lesions.get(uid, 0), lung_field.get(uid, ""))
        for (patient, uid), slices in sorted(by_series.items())
    ]
    patients = sorted({patient for patient, _ in by_series})
    for patient in patients:
        slices = [r for r in results if r.patient_id == patient]
        count = sum(lesions.get(uid, 0) for p, uid in by_series if p == patient)
        rows.append(_summary_row("patient", patient, "", "", slices, head, threshold, count))
    return rows


def slice_rows(results: Sequence[SliceResult]) -> list[dict[str, object]]:
    """Rows of slices.csv."""
    return [
        {
            "patient_id": r.patient_id,
            "dicom_patient_id": r.dicom_patient_id,
            "series_instance_uid": r.series_instance_uid,
            "sop_instance_uid": r.sop_instance_uid,
            "slice_index": r.slice_index,
            "instance_number": "" if r.instance_number is None else r.instance_number,
            "detections": len(r.predictions),
            "max_score": f"{r.max_score:.4f}" if r.predictions else "",
            "top_label": max(r.predictions, key=lambda p: p.score).label if r.predictions else "",
            "path": r.path,
            "outside_lung": r.outside_lung,
            "slice_position_mm": "" if r.position_mm is None else round(r.position_mm, 4),
        }
        for r in results
    ]
