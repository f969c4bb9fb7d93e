"""DICOM SR of a CT series' VOC boxes, made the way Imaging Data Commons made this
collection's (analysis result ``lung_pet_ct_dx_annotations``, doi:10.5281/zenodo.16989819;
recipe: github.com/deepakri201/SR_for_Lung_PET_CT_Dx, ``SR_for_Lung_PET_CT_Dx.ipynb``).

One Comprehensive 3D SR per annotated CT series (highdicom, Explicit VR Little Endian):

- TID 1500 Measurement Report, procedure SCT 363679005 "Imaging procedure", person
  observer ``Anonymous^Reader``; every file of the series is evidence;
- one TID 1410 planar ROI group per box, tracking identifiers ``"1"``..``"N"`` in the order
  of the slices' ImagePositionPatient z (IDC's ``ipp2``), each with a new tracking UID;
  region: a closed POLYLINE (xmin,ymin → xmax,ymin → xmax,ymax → xmin,ymax → xmin,ymin)
  in pixel coordinates, the VOC numbers as they are, referencing its slice; geometric
  purpose SCT 75958009 "Bounded by"; finding type by the XML object name (A/a, B/b, E/e,
  G/g → :data:`detect.histology.FINDING_CODES`; anything else SCT 108369006 Neoplasm);
  finding site SCT 39607008 "Lung structure";
- series number = the CT's + 100, description "Tumor bounding box", manufacturer "Expert
  annotation from TCIA", complete and final, clinical trial protocol
  ``10.5281/zenodo.16989820`` (issuer DOI, sponsor "Imaging Data Commons"), as IDC's.

Where this differs from IDC's notebook: it keeps only the first object of each XML (every
box is written here, one group each; the archive's files hold one box each, so the result
is the same for them); it gives every group of a series the finding type of the series'
first box (here each box has its own); and it leaves out the Type 2 / 1C attributes the
clinical trial attributes bring in (protocol name, site ID and name empty, subject ID =
the patient ID here, so that dciodvfy finds no error in the module).
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from detect.boxes import XYXY
from detect.errors import AnnotationError, DicomError
from detect.histology import FINDING_CODES, NEOPLASM, CodedTerm
from detect.io.atomic import atomic_path
from detect.io.voc import parse_voc

log = logging.getLogger(__name__)

SERIES_DESCRIPTION = "Tumor bounding box"
MANUFACTURER = "Expert annotation from TCIA"
OBSERVER = "Anonymous^Reader"
SERIES_NUMBER_OFFSET = 100
PROTOCOL_ID, PROTOCOL_ISSUER, SPONSOR = "10.5281/zenodo.16989820", "DOI", "Imaging Data Commons"
PROCEDURE = CodedTerm("363679005", "SCT", "Imaging procedure")
BOUNDED_BY = CodedTerm("75958009", "SCT", "Bounded by")
LUNG = CodedTerm("39607008", "SCT", "Lung structure")
_IDC_NAMES = {name: letter for letter in FINDING_CODES for name in (letter, letter.lower())}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Patient and study attributes highdicom copies from the evidence (Type 2 in the SR: may
#: be empty, must be there); a source header without one gets it empty.
_TYPE2 = ("PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
          "StudyDate", "StudyTime", "ReferringPhysicianName")


@dataclass(frozen=True)
class VocBox:
    """One box to write: its slice, the XML object name as written, xyxy px."""

    sop_instance_uid: str
    name: str
    xyxy: XYXY


def _concept(term: CodedTerm) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=term.value, scheme_designator=term.scheme,
                              meaning=term.meaning)


def idc_finding_type(name: str) -> CodedTerm:
    """IDC's finding type for an XML object name: the letter's code, else Neoplasm."""
    letter = _IDC_NAMES.get(name)
    return FINDING_CODES[letter] if letter else NEOPLASM


def _corners(xyxy: XYXY) -> np.ndarray:
    x1, y1, x2, y2 = xyxy
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], dtype=np.float64)


def _z(ds: Dataset) -> float:
    try:
        return float(ds.ImagePositionPatient[2])
    except (AttributeError, IndexError, TypeError, ValueError):
        return 0.0  # as IDC: a slice without a position sorts as z = 0


def _group(number: int, box: VocBox, image: Dataset) -> Any:
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=_corners(box.xyxy),
        source_image=hd.sr.SourceImageForRegion.from_source_image(image=image),
        pixel_origin_interpretation=None,
    )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=str(number)),
        referenced_region=region,
        geometric_purpose=_concept(BOUNDED_BY),
        finding_type=_concept(idc_finding_type(box.name)),
        finding_sites=[hd.sr.FindingSite(anatomic_location=_concept(LUNG))],
    )


def _headers(series_files: Sequence[Path]) -> list[Dataset]:
    headers: list[Dataset] = []
    for path in series_files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (OSError, EOFError, ValueError, pydicom.errors.InvalidDicomError) as exc:
            raise DicomError(f"{path.name}: cannot read its header for the SR ({exc})") from None
        for keyword in _TYPE2:
            if keyword not in ds:
                setattr(ds, keyword, None)
        headers.append(ds)
    return headers


def build_idc_sr(series_files: Sequence[Path], boxes: Sequence[VocBox]) -> hd.sr.Comprehensive3DSR:
    """The IDC-style SR of one CT series (all its files) holding ``boxes`` (at least one).

    Raises:
        DicomError: a file cannot be read, a box's slice is not among the files, or
            highdicom refuses the content.
    """
    if not boxes:
        raise DicomError("an SR needs at least one box (TID 1500 wants a measurement group)")
    headers = _headers(series_files)
    by_sop = {str(ds.SOPInstanceUID): ds for ds in headers}
    missing = sorted({b.sop_instance_uid for b in boxes} - set(by_sop))
    if missing:
        raise DicomError(f"{len(missing)} boxed slice(s) not in the series, e.g. {missing[0]}")
    ordered = sorted(boxes, key=lambda b: (_z(by_sop[b.sop_instance_uid]), b.sop_instance_uid))
    groups = [_group(n, b, by_sop[b.sop_instance_uid]) for n, b in enumerate(ordered, start=1)]
    observer = hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept(value="121006", scheme_designator="DCM",
                                         meaning="Person"),
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=OBSERVER),
    )
    first = by_sop[ordered[0].sop_instance_uid]
    try:
        with warnings.catch_warnings():
            # one-component patient names such as TCIA's "Lung_Dx-A0002" are the source's
            warnings.filterwarnings("ignore", message=".*person name", category=UserWarning)
            report = hd.sr.MeasurementReport(
                observation_context=hd.sr.ObservationContext(observer_person_context=observer),
                procedure_reported=_concept(PROCEDURE),
                imaging_measurements=groups,
            )
            sr = hd.sr.Comprehensive3DSR(
                evidence=headers, content=report,
                series_number=int(first.get("SeriesNumber") or 0) + SERIES_NUMBER_OFFSET,
                series_instance_uid=generate_uid(), sop_instance_uid=generate_uid(),
                series_description=SERIES_DESCRIPTION, instance_number=1,
                manufacturer=MANUFACTURER, is_complete=True, is_final=True,
            )
    except (ValueError, TypeError, AttributeError) as exc:
        raise DicomError(f"cannot build the SR of series {first.SeriesInstanceUID} ({exc})"
                         ) from None
    sr.ClinicalTrialProtocolID = PROTOCOL_ID
    sr.IssuerOfClinicalTrialProtocolID = PROTOCOL_ISSUER
    sr.ClinicalTrialSponsorName = SPONSOR
    # what those three make the Clinical Trial Subject module require (IDC's notebook
    # leaves them out; validators then call the file invalid)
    sr.ClinicalTrialProtocolName = None
    sr.ClinicalTrialSiteID = None
    sr.ClinicalTrialSiteName = None
    sr.ClinicalTrialSubjectID = sr.PatientID
    return sr


@dataclass(frozen=True)
class SliceRef:
    """Where a slice is: its series and patient, and every file of that series."""

    series_instance_uid: str
    patient_id: str
    series_files: tuple[Path, ...]


@dataclass
class IdcSrResult:
    """What :func:`write_idc_srs` did: files written, boxes in them, XMLs not used."""

    written: list[Path] = field(default_factory=list)
    boxes: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (xml path, why)


def _xml_files(root: Path) -> Iterator[Path]:
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if name.lower().endswith(".xml") and path.is_file() and not path.is_symlink():
                yield path


def _safe(text: str) -> str:
    return (_UNSAFE.sub("_", text.strip()).strip("._") or "unknown")[:128]


def write_idc_srs(
    annotation_root: Path, slices: Mapping[str, SliceRef], out: Path, *, overwrite: bool = False
) -> IdcSrResult:
    """One IDC-style SR per annotated series: ``out/<PatientID>/<SeriesInstanceUID>.dcm``
    (both made path-safe), from every ``<SOPInstanceUID>.xml`` under ``annotation_root``.

    XMLs whose slice is not in ``slices``, that cannot be parsed or that hold no box are
    skipped and listed. An existing file is left alone unless ``overwrite``.

    Raises:
        DicomError: a series' files cannot be read or the SR cannot be built.
        FileExistsError: a target exists and ``overwrite`` is False.
    """
    result = IdcSrResult()
    by_series: dict[str, list[VocBox]] = {}
    for xml in _xml_files(annotation_root):
        rel = str(xml.relative_to(annotation_root))
        ref = slices.get(xml.stem)
        if ref is None:
            result.skipped.append((rel, "no slice with this SOPInstanceUID"))
            continue
        try:
            annotation = parse_voc(xml)
        except AnnotationError as exc:
            result.skipped.append((rel, f"{exc.kind}: {exc.detail}"))
            continue
        if not annotation.objects:
            result.skipped.append((rel, "no <object>"))
            continue
        by_series.setdefault(ref.series_instance_uid, []).extend(
            VocBox(xml.stem, obj.name, obj.xyxy) for obj in annotation.objects
        )
    for series_uid, boxes in sorted(by_series.items()):
        ref = slices[boxes[0].sop_instance_uid]
        target = out / _safe(ref.patient_id) / f"{_safe(series_uid)}.dcm"
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite to replace it")
        sr = build_idc_sr(ref.series_files, boxes)
        with atomic_path(target) as tmp:
            sr.save_as(tmp, enforce_file_format=True)
        result.written.append(target)
        result.boxes += len(boxes)
    log.info("wrote %d IDC-style SRs (%d boxes) under %s", len(result.written), result.boxes, out)
    return result
