"""Tumour boxes from any DICOM SR measurement report (TID 1500), as Imaging Data Commons
publishes this collection's annotations and as ``detect predict --save sr`` writes them.

A file is an SR by its content (SOP Class UID of a structured report, or Modality SR),
never by its name. :func:`read_sr_boxes` returns, per planar ROI measurement group
(TID 1410/1411 under "Imaging Measurements"), either a box or a problem:

- a box: the referenced CT slice (SOP Instance UID), the region's min/max as internal
  xyxy px, the histology letter of its finding type (:func:`detect.histology.finding_letter`;
  ``None`` for any other finding, Neoplasm included), the tracking identifier and UID;
- a problem, with the accounting kind the converter reports it under: ``box-invalid``
  (no region, a region that is not an axis-aligned rectangle, a 3D region, an unknown
  graphic type, non-finite or too many coordinates, no referenced image).

Coordinates: SCOORD graphic data are (column, row) with (0, 0) the top-left corner of the
top-left pixel, which is detect's pixel-edge xyxy (:mod:`detect.boxes`) as it is.

The file is untrusted: :mod:`detect.io.sr_file` opens it (size, sequence items, deflate
and truncation checked before pydicom parses it); here the number of groups, and each
region's coordinate count from its declared length, are checked before values are
converted. Whole-file refusals raise :class:`~detect.errors.AnnotationError` of kind
``unreadable-sr``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from detect.boxes import XYXY
from detect.errors import AnnotationError
from detect.histology import finding_letter
from detect.io.sr_file import SR_STORAGE_CLASSES, read_sr_dataset, refuse_sr

#: Measurement groups in one report (one per box: IDC's series have tens to hundreds).
MAX_GROUPS = 1_500
#: Coordinates (numbers) of one region: a rectangle has 10; a traced outline a few hundred.
MAX_REGION_VALUES = 4_096

_DCM, _SCT = "DCM", "SCT"
_REPORT = (_DCM, "126000")  # Imaging Measurement Report
_MEASUREMENTS = (_DCM, "126010")  # Imaging Measurements
_GROUP = (_DCM, "125007")  # Measurement Group
_TRACKING_ID = (_DCM, "112039")
_TRACKING_UID = (_DCM, "112040")
_FINDING = (_DCM, "121071")
_IMAGE_REGION = (_DCM, "111030")
_GRAPHIC_DATA = 0x00700022



@dataclass(frozen=True)
class SrBox:
    """One planar ROI group that is a box: ``xyxy`` px on slice ``sop_instance_uid``.

    ``letter`` is A/B/E/G, or None when the finding type is not one of the four
    histologies (``finding`` says what it is: ``"SCT 108369006 (Neoplasm)"``).
    ``group`` counts the measurement groups of the report from 1.
    """

    group: int
    sop_instance_uid: str
    xyxy: XYXY
    letter: str | None
    finding: str
    tracking_id: str
    tracking_uid: str

    @property
    def where(self) -> str:
        """The group as a person finds it in a viewer: number and tracking identifier."""
        return _where(self.group, self.tracking_id)


@dataclass(frozen=True)
class SrProblem:
    """A measurement group that is not a usable box; ``kind`` is the accounting kind."""

    group: int
    kind: str
    detail: str
    sop_instance_uid: str | None = None
    tracking_id: str = ""

    @property
    def where(self) -> str:
        return _where(self.group, self.tracking_id)


@dataclass(frozen=True)
class SrAnnotation:
    """What one SR file holds: its own identity, and a box or a problem per group."""

    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    patient_id: str
    boxes: tuple[SrBox, ...]
    problems: tuple[SrProblem, ...]


def _where(group: int, tracking_id: str) -> str:
    return f"measurement group {group}" + (f" (tracking id {tracking_id!r})" if tracking_id else "")


def _code(item: Dataset, keyword: str) -> tuple[str, str, str] | None:
    """(scheme, value, meaning) of the first item of a code sequence, or None."""
    sequence = item.get(keyword)
    if not sequence:
        return None
    code = sequence[0]
    value = code.get("CodeValue") or code.get("LongCodeValue") or code.get("URNCodeValue")
    return (
        str(code.get("CodingSchemeDesignator", "")).strip(),
        str(value or "").strip(),
        str(code.get("CodeMeaning", "")).strip(),
    )


def _name(item: Dataset) -> tuple[str, str] | None:
    code = _code(item, "ConceptNameCodeSequence")
    return None if code is None else (code[0], code[1])


def _children(item: Dataset) -> Iterator[Dataset]:
    yield from item.get("ContentSequence") or ()


def _is_report(ds: Dataset) -> bool:
    for template in ds.get("ContentTemplateSequence") or ():
        if str(template.get("TemplateIdentifier", "")).strip() == "1500":
            return True
    return _name(ds) == _REPORT


def _groups(ds: Dataset) -> list[Dataset]:
    groups: list[Dataset] = []
    for container in _children(ds):
        if container.get("ValueType") != "CONTAINER" or _name(container) != _MEASUREMENTS:
            continue
        for item in _children(container):
            if item.get("ValueType") == "CONTAINER" and _name(item) == _GROUP:
                groups.append(item)
    return groups


def _region_values(region: Dataset) -> list[float]:
    raw = region.get_item(_GRAPHIC_DATA)
    if raw is None:
        raise ValueError("no graphic data")
    if isinstance(raw, RawDataElement) and raw.length > 4 * MAX_REGION_VALUES:
        raise ValueError(
            f"{raw.length // 4} coordinates, over the {MAX_REGION_VALUES} limit for a region"
        )
    values = region.GraphicData
    values = [values] if isinstance(values, float | int) else list(values)
    if len(values) > MAX_REGION_VALUES:
        raise ValueError(f"{len(values)} coordinates, over the {MAX_REGION_VALUES} limit")
    return [float(v) for v in values]


def _rectangle(graphic_type: str, values: list[float]) -> XYXY:
    """Min/max of a region that is an axis-aligned rectangle: a POLYLINE (or POLYGON) of
    its 4 corners, closed (5 points, last = first) or not. Raises ValueError otherwise."""
    if graphic_type not in ("POLYLINE", "POLYGON"):
        raise ValueError(f"graphic type {graphic_type!r} is not a rectangle (POLYLINE)")
    if len(values) % 2:
        raise ValueError(f"{len(values)} coordinates: not (column, row) pairs")
    if not all(math.isfinite(v) for v in values):
        raise ValueError("non-finite coordinates")
    points = list(zip(values[0::2], values[1::2]))
    if len(points) == 5 and points[0] == points[-1]:
        points = points[:4]
    if len(points) != 4:
        raise ValueError(f"{len(values) // 2} points; a rectangle has 4 corners (5 closed)")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
    corners = {(x, y) for x in (x1, x2) for y in (y1, y2)}
    edges_axis_aligned = all(
        a[0] == b[0] or a[1] == b[1] for a, b in zip(points, points[1:] + points[:1])
    )
    if set(points) != corners or not edges_axis_aligned:
        raise ValueError(f"points {points} are not the corners of an axis-aligned rectangle")
    return (x1, y1, x2, y2)


def _referenced_sop(region: Dataset) -> str | None:
    for child in _children(region):
        if child.get("ValueType") != "IMAGE":
            continue
        references: Any = child.get("ReferencedSOPSequence") or ()
        if len(references) == 1:
            uid = str(references[0].get("ReferencedSOPInstanceUID", "")).strip()
            return uid if 0 < len(uid) <= 64 else None  # a UID has at most 64 characters
    return None


def _group(number: int, group: Dataset) -> SrBox | SrProblem:
    tracking_id, tracking_uid = "", ""
    finding: tuple[str, str, str] | None = None
    regions: list[Dataset] = []
    for item in _children(group):
        name, kind = _name(item), item.get("ValueType")
        if name == _TRACKING_ID and kind == "TEXT":
            tracking_id = str(item.get("TextValue", "")).strip()[:64]
        elif name == _TRACKING_UID and kind == "UIDREF":
            tracking_uid = str(item.get("UID", "")).strip()[:64]
        elif name == _FINDING and kind == "CODE":
            finding = _code(item, "ConceptCodeSequence")
        elif name == _IMAGE_REGION and kind in ("SCOORD", "SCOORD3D"):
            regions.append(item)
    where = _where(number, tracking_id)

    def problem(detail: str, sop: str | None = None) -> SrProblem:
        return SrProblem(number, "box-invalid", f"{where}: {detail}", sop, tracking_id)

    if len(regions) != 1:
        return problem(f"{len(regions)} image regions; a box is exactly one")
    region = regions[0]
    if region.get("ValueType") == "SCOORD3D":
        return problem("3D region (SCOORD3D, patient mm); only pixel boxes (SCOORD) are read")
    sop = _referenced_sop(region)
    if sop is None:
        return problem("the region references no image (one SOP Instance UID expected)")
    graphic_type = str(region.get("GraphicType", "")).strip()
    try:
        xyxy = _rectangle(graphic_type, _region_values(region))
    except ValueError as exc:
        return problem(str(exc), sop)
    if finding is None:
        letter, text = None, "none"
    else:
        letter = finding_letter(finding[0], finding[1])
        text = f"{finding[0]} {finding[1]} ({finding[2]})"
    return SrBox(number, sop, xyxy, letter, text[:160], tracking_id, tracking_uid)


def read_sr_boxes(path: Path) -> SrAnnotation:
    """Every planar ROI measurement group of a TID 1500 SR, as a box or a problem.

    Raises:
        AnnotationError: kind ``unreadable-sr``: too big, too many items or groups,
            deflated, not DICOM, not an SR, or not a TID 1500 measurement report.
    """
    ds = read_sr_dataset(path)
    try:
        sop_class = str(ds.get("SOPClassUID", ""))
        modality = str(ds.get("Modality", "")).strip()
        if sop_class not in SR_STORAGE_CLASSES and modality != "SR":
            raise refuse_sr(f"not a structured report (SOP class {sop_class!r}, {modality=})")
        if not _is_report(ds):
            raise refuse_sr(f"not a TID 1500 measurement report (document title {_name(ds)})")
        groups = _groups(ds)
        if len(groups) > MAX_GROUPS:
            raise refuse_sr(f"{len(groups)} measurement groups, over the {MAX_GROUPS} limit")
        results: list[SrBox | SrProblem] = []
        for number, group in enumerate(groups, start=1):
            try:
                results.append(_group(number, group))
            except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
                results.append(SrProblem(number, "box-invalid",
                                         f"{_where(number, '')}: malformed ({exc})"))
        return SrAnnotation(
            sop_instance_uid=_text(ds, "SOPInstanceUID"),
            series_instance_uid=_text(ds, "SeriesInstanceUID"),
            study_instance_uid=_text(ds, "StudyInstanceUID"),
            patient_id=_text(ds, "PatientID"),
            boxes=tuple(r for r in results if isinstance(r, SrBox)),
            problems=tuple(r for r in results if isinstance(r, SrProblem)),
        )
    except AnnotationError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError,
            OverflowError) as exc:
        raise refuse_sr(f"malformed content tree ({type(exc).__name__}: {exc})") from None


def _text(ds: Dataset, keyword: str) -> str:
    value: Any = ds.get(keyword, "")
    return str(value or "").strip()[:128]
