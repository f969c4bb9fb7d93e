"""What a DICOM SR takes from its source slices: validated attributes only.

highdicom copies every Patient and Study module attribute of the first evidence dataset
into the SR it builds. A real header holds attributes detect never looked at, some invalid
(Philips CT series carry a ReferencedStudySequence item without its Referenced SOP Class
UID, a Type 1 attribute, so the copied SR fails ``dciodvfy``). So highdicom is handed
evidence that detect builds itself from the source headers:

- every slice read: its SOP Class, SOP Instance, Study and Series Instance UIDs, each
  checked to be a valid UID;
- the first slice also carries the patient and study attributes below, each copied only
  when it is one value, valid for its VR (pydicom's ``validate_value``: length, character
  set, date and time forms) and free of control characters and backslashes; the Type 2
  ones are present but empty otherwise. The scanner's equipment attributes go along for
  highdicom's Contributing Equipment item. Nothing else of the source is copied.

Text is re-encoded as UTF-8 (``ISO_IR 192``) when any copied value is not ASCII.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydicom
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import validate_value

from detect.errors import DicomError
from detect.io.dicom import SliceHeader

log = logging.getLogger(__name__)

#: Patient and Study (Type 2: present, empty when absent or invalid), VR.
TYPE2 = (("PatientName", "PN"), ("PatientID", "LO"), ("PatientBirthDate", "DA"),
         ("PatientSex", "CS"), ("AccessionNumber", "SH"), ("StudyID", "SH"),
         ("StudyDate", "DA"), ("StudyTime", "TM"), ("ReferringPhysicianName", "PN"))
#: Copied only when present and valid: study, de-identification, acquisition equipment.
OPTIONAL = (("StudyDescription", "LO"), ("PatientAge", "AS"),
            ("PatientIdentityRemoved", "CS"), ("DeidentificationMethod", "LO"),
            ("Manufacturer", "LO"), ("ManufacturerModelName", "LO"),
            ("DeviceSerialNumber", "LO"), ("StationName", "SH"), ("InstitutionName", "LO"))
#: Defined terms of the coded strings copied.
TERMS = {"PatientSex": ("M", "F", "O"), "PatientIdentityRemoved": ("YES", "NO")}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TEXT_VRS = ("PN", "LO", "SH", "CS", "AS", "DA", "TM")


def valid_value(keyword: str, vr: str, value: Any) -> str | None:
    """``value`` as the text to copy, or None when it is not one valid ``vr`` value."""
    if value is None or isinstance(value, (MultiValue, list, tuple, bytes)):
        return None
    text = str(value).strip()
    if not text or "\\" in text or _CONTROL.search(text):
        return None
    if keyword in TERMS and text not in TERMS[keyword]:
        return None
    try:
        validate_value(vr, text, pydicom_config.RAISE)
    except (ValueError, TypeError):
        return None
    return text


def valid_uid(value: str, what: str, where: Path) -> str:
    """A UID as it is.

    Raises:
        DicomError: not a valid UID (digits and dots, at most 64 characters).
    """
    text = str(value)
    if valid_value(what, "UI", text) is None:
        raise DicomError(f"{where}: {what} {text[:70]!r} is not a valid UID; the series gets "
                         f"no DICOM SR")
    return text


def _uids(header: SliceHeader) -> Dataset:
    item = Dataset()
    item.SOPClassUID = valid_uid(header.sop_class_uid, "SOPClassUID", header.path)
    item.SOPInstanceUID = valid_uid(header.sop_instance_uid, "SOPInstanceUID", header.path)
    item.StudyInstanceUID = valid_uid(header.study_instance_uid, "StudyInstanceUID",
                                      header.path)
    item.SeriesInstanceUID = valid_uid(header.series_instance_uid, "SeriesInstanceUID",
                                       header.path)
    return item


def _patient_and_study(header: SliceHeader) -> tuple[Dataset, list[str]]:
    """The first evidence item and the attributes that were not copied (invalid)."""
    try:
        source = pydicom.dcmread(header.path, stop_before_pixels=True)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise DicomError(f"cannot re-read {header.path} for its DICOM SR ({exc})") from None
    item = _uids(header)
    dropped = []
    for keyword, vr in (*TYPE2, *OPTIONAL):
        raw = source.get(keyword)
        text = valid_value(keyword, vr, raw)
        if text is None and raw not in (None, ""):
            dropped.append(keyword)
        if text is not None:
            setattr(item, keyword, text)
        elif (keyword, vr) in TYPE2:
            setattr(item, keyword, None)
    versions = source.get("SoftwareVersions")
    texts = [valid_value("SoftwareVersions", "LO", v) for v in
             (versions if isinstance(versions, (MultiValue, list)) else [versions])]
    if versions is not None and texts and all(texts):
        item.SoftwareVersions = texts if len(texts) > 1 else texts[0]
    return item, dropped


def evidence_of(series_uid: str, read: Sequence[SliceHeader]) -> list[Dataset]:
    """The evidence highdicom gets for the SR of one series: the first slice read with its
    validated patient and study attributes, then every other slice read (UIDs only).

    Raises:
        DicomError: no slice, a UID that is not valid, or the first slice unreadable.
    """
    if not read:
        raise DicomError(f"series {series_uid}: no slice that was read is in the series")
    first, dropped = _patient_and_study(read[0])
    if dropped:
        log.warning("SR of series %s: %s not copied from the source (not a valid DICOM "
                    "value)", series_uid, ", ".join(dropped))
    return [first, *(_uids(header) for header in read[1:])]


def character_set(evidence: Dataset) -> str | None:
    """``ISO_IR 192`` (UTF-8) when a copied text is not ASCII, else None (the default)."""
    texts = [str(e.value) for e in evidence if e.VR in _TEXT_VRS and e.value is not None]
    return "ISO_IR 192" if any(not t.isascii() for t in texts) else None
