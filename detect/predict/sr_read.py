"""Reading back a DICOM SR that ``detect predict --save sr`` wrote (:mod:`detect.predict.sr`):
its UIDs, the study and series it refers to, and each measurement group's box, score,
histology and lesion measurements."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom

from detect.errors import DicomError
from detect.predict.sr import DIAMETER, HISTOLOGY_CONCEPTS, SCHEME, SCORE


@dataclass(frozen=True)
class SrFinding:
    """One measurement group of a detect SR, read back.

    ``xyxy`` px (pixel-edge, as written); ``score`` in [0, 1]; ``finding`` the histology
    letter of the finding type (None for SCT Neoplasm); ``histology`` the probabilities,
    or None when the SR has none; ``diameter_mm``, ``extent_mm`` its lesion's
    measurements, None when absent.
    """

    tracking_id: str
    tracking_uid: str
    sop_instance_uid: str
    xyxy: tuple[float, float, float, float]
    score: float
    finding: str | None
    histology: dict[str, float] | None
    diameter_mm: float | None = None
    extent_mm: float | None = None


@dataclass(frozen=True)
class SrDocument:
    """What a detect SR says: its own UIDs, the study and series it refers to, findings."""

    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    referenced_series: tuple[str, ...]
    evidence: tuple[str, ...]
    findings: tuple[SrFinding, ...]


def _finding(group: Any) -> SrFinding:
    points = np.asarray(group.roi.value, dtype=np.float64)
    x1, y1 = points.min(axis=0)
    x2, y2 = points.max(axis=0)
    letters = {str(c.value): k for k, c in HISTOLOGY_CONCEPTS.items()}
    score, histology, sizes = 0.0, {}, {}
    for measurement in group.get_measurements():
        name = measurement.name
        key = (str(name.value), str(name.scheme_designator))
        if key == (SCORE.value, SCORE.scheme_designator):
            score = float(measurement.value) / 100.0
        elif name.scheme_designator == SCHEME and str(name.value).startswith("P-"):
            histology[str(name.value)[2:]] = float(measurement.value)
        elif key in ((DIAMETER.value, DIAMETER.scheme_designator), ("CC-EXTENT", SCHEME)):
            sizes[key[0]] = float(measurement.value)
    reference = group.roi.ContentSequence[0].ReferencedSOPSequence[0]
    return SrFinding(
        tracking_id=str(group.tracking_identifier), tracking_uid=str(group.tracking_uid),
        sop_instance_uid=str(reference.ReferencedSOPInstanceUID),
        xyxy=(float(x1), float(y1), float(x2), float(y2)), score=score,
        finding=letters.get(str(group.finding_type.value)), histology=histology or None,
        diameter_mm=sizes.get(DIAMETER.value), extent_mm=sizes.get("CC-EXTENT"),
    )


def read_sr(path: Path) -> SrDocument:
    """Read an SR written by :func:`detect.predict.sr.write_series_srs`.

    Raises:
        DicomError: not a readable TID 1500 SR document.
    """
    try:
        sr = hd.sr.srread(path)
        content: Any = sr.content  # a MeasurementReport for a TID 1500 document
        groups = content.get_planar_roi_measurement_groups()
    except (OSError, ValueError, AttributeError, pydicom.errors.InvalidDicomError) as exc:
        raise DicomError(f"{path} is not a readable TID 1500 DICOM SR ({exc})") from None
    evidence = sr.get_evidence()
    return SrDocument(
        patient_id=str(sr.PatientID), study_instance_uid=str(sr.StudyInstanceUID),
        series_instance_uid=str(sr.SeriesInstanceUID), sop_instance_uid=str(sr.SOPInstanceUID),
        referenced_series=tuple(dict.fromkeys(str(e[1]) for e in evidence)),
        evidence=tuple(str(e[2]) for e in evidence),
        findings=tuple(_finding(g) for g in groups),
    )
