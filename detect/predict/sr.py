"""DICOM Structured Reports of ``detect predict --save sr``: one TID 1500 per CT series.

``OUT/sr/<patient>/<SeriesInstanceUID>.dcm`` is a Comprehensive 3D SR (highdicom), the
kind of object the Imaging Data Commons publishes for this collection's tumour boxes, so
PACS viewers (OHIF, 3D Slicer) show the boxes on the CT:

- Measurement Report (TID 1500), procedure "CT unspecified body region", observer = the
  detect device; one Planar ROI measurement group (TID 1410) per detected box, with
  - a tracking identifier and UID per 3D lesion (:mod:`detect.predict.lesions`), shared
    by the groups of the lesion's boxes: ``lesion N``, N its number in the series (1 =
    highest score), as lesions.json and lesions.csv number it (``detection N`` for a box
    in no lesion, which predict does not produce);
  - the box as an image region: a closed POLYLINE of its 4 corners (5 points) on the
    source slice, whose SOP Instance UID it references, with the geometric purpose
    SCT 75958009 "Bounded by" (as IDC's SRs of this collection): 3D Slicer's
    QuantitativeReporting reads a POLYLINE as a box only then (DICOM CP-1852);
  - finding type: the most likely histology as IDC codes the ground truth
    (SCT Adenocarcinoma, Small cell carcinoma, Large cell carcinoma, Squamous cell
    carcinoma), or SCT Neoplasm when the detector has no histology; finding site SCT
    Lung structure (as IDC);
  - measurements: DCM "Certainty of Finding" = the detection score in % (0-100), and,
    when the detector gives histology probabilities, "Probability of <histology>" for
    each letter (unit UCUM "1"), coded in detect's private scheme ``99DETECT`` (declared
    in the SR's Coding Scheme Identification Sequence); the lesion's longest axial
    diameter (SCT Diameter, mm) and craniocaudal extent (``99DETECT`` ``CC-EXTENT``, mm),
    the same in every group of the lesion, when the series' geometry gives them;
  - algorithm identification: ``detect <family>``, detect's version, the run and the
    score threshold.
- Patient and study attributes from the source header, each validated before it is
  copied (:mod:`detect.predict.sr_evidence`: nothing else of the source reaches the SR),
  so the same Study Instance UID and Patient ID; every slice read is listed as evidence
  (highdicom's evidence handling). The document is complete, preliminary and unverified
  (a model's output).
- Its Series, SOP Instance and tracking UIDs are derived (:func:`sr_uids`) from the model
  (:func:`model_key`: weights, threshold, histology head, post-processing) and the slices
  read: the same
  model on the same slices gives the same SR identity, so a PACS that already holds it
  is not sent a second copy (``detect predict --push``); a different result, a new one.
- A series without findings gets no SR (see :func:`write_series_srs`).

Coordinates: DICOM SCOORD graphic data are (column, row) with (0, 0) the top-left corner
of the top-left pixel and (Columns, Rows) the bottom-right corner of the last pixel:
detect's internal pixel-edge xyxy (:mod:`detect.boxes`) as it is, without conversion.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from detect import __version__
from detect.errors import DicomError
from detect.io.atomic import atomic_path
from detect.io.paths import inside
from detect.predict.lesions import SeriesLesions
from detect.predict.sources import Series
from detect.predict.sr_evidence import character_set, evidence_of
from detect.predict.writers import SliceResult, safe_name
from detect.predictions import Prediction, histology_argmax

log = logging.getLogger(__name__)

SR_DIR = "sr"
SCHEME = "99DETECT"
SR_SERIES_NUMBER = 9901
HISTOLOGY_CONCEPTS: Mapping[str, Any] = {
    "A": codes.SCT.Adenocarcinoma,
    "B": codes.SCT.SmallCellCarcinoma,
    "E": codes.SCT.LargeCellCarcinoma,
    "G": codes.SCT.SquamousCellCarcinoma,
}
NO_HISTOLOGY = codes.SCT.Neoplasm
SCORE = codes.DCM.CertaintyOfFinding
DIAMETER = codes.SCT.Diameter


def probability_concept(letter: str) -> hd.sr.CodedConcept:
    """``99DETECT`` code ``P-<letter>``: probability that the finding is that histology."""
    meaning = str(HISTOLOGY_CONCEPTS[letter].meaning).lower()
    return hd.sr.CodedConcept(value=f"P-{letter}", scheme_designator=SCHEME,
                              meaning=f"Probability of {meaning}")


def extent_concept() -> hd.sr.CodedConcept:
    """``99DETECT`` code ``CC-EXTENT``: a lesion's craniocaudal extent."""
    return hd.sr.CodedConcept(value="CC-EXTENT", scheme_designator=SCHEME,
                              meaning="Craniocaudal extent")


@dataclass(frozen=True)
class LesionTag:
    """What a box's group takes from its lesion: tracking identifier and UID, and the
    lesion's measurements (mm; None when the geometry does not give them)."""

    identifier: str
    uid: str
    diameter_mm: float | None = None
    extent_mm: float | None = None


@dataclass(frozen=True)
class SrModel:
    """What made the findings: family (yolov8...), run name, score threshold used, and
    ``key``, what identifies the result's maker (:func:`model_key`; part of the SR UIDs)."""

    family: str
    run: str
    conf: float
    key: str = ""


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_key(family: str, weights: Path, conf: float, head: Path | None = None,
              postprocess: str = "") -> str:
    """What makes a result: the family, the weights' and the histology head's bytes, the
    score threshold and the post-processing (``postprocess``: the lung field and linking
    rules as text); a renamed run folder is the same model."""
    parts = [family, file_digest(weights), repr(float(conf)),
             file_digest(head) if head is not None else "no-head", postprocess]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def sr_uids(key: str, series_uid: str, sop_uids: Sequence[str]) -> tuple[str, str]:
    """(SeriesInstanceUID, SOPInstanceUID) of the SR of one CT series: derived from the
    model key, the CT series and the slices read (sorted), so the same model on the same
    slices always names its SR the same way."""
    sources = [key, series_uid, *sorted(sop_uids)]
    return (generate_uid(entropy_srcs=["detect-sr-series", *sources]),
            generate_uid(entropy_srcs=["detect-sr-instance", *sources]))


def _most_likely(prediction: Prediction) -> str | None:
    letter = histology_argmax(prediction.histology)
    if letter is None and prediction.label in HISTOLOGY_CONCEPTS:
        letter = prediction.label
    return letter if letter in HISTOLOGY_CONCEPTS else None


def _measurements(prediction: Prediction, tag: LesionTag) -> list[hd.sr.Measurement]:
    out = [hd.sr.Measurement(name=SCORE, value=round(100.0 * prediction.score, 6),
                             unit=codes.UCUM.Percent)]
    for letter, probability in sorted((prediction.histology or {}).items()):
        if letter in HISTOLOGY_CONCEPTS:
            out.append(hd.sr.Measurement(name=probability_concept(letter),
                                         value=round(float(probability), 6),
                                         unit=codes.UCUM.NoUnits))
    for name, value in ((DIAMETER, tag.diameter_mm), (extent_concept(), tag.extent_mm)):
        if value is not None:
            out.append(hd.sr.Measurement(name=name, value=round(float(value), 3),
                                         unit=codes.UCUM.Millimeter))
    return out


def _corners(xyxy: Sequence[float]) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], dtype=np.float64)


def _group(prediction: Prediction, tag: LesionTag, sop_class: str, algorithm: Any
           ) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    letter = _most_likely(prediction)
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=_corners(prediction.xyxy),
        source_image=hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=sop_class,
            referenced_sop_instance_uid=prediction.sop_instance_uid,
        ),
    )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=tag.uid, identifier=tag.identifier),
        referenced_region=region,
        geometric_purpose=codes.SCT.BoundedBy,
        finding_type=HISTOLOGY_CONCEPTS[letter] if letter else NO_HISTOLOGY,
        finding_sites=[hd.sr.FindingSite(anatomic_location=codes.SCT.LungStructure)],
        algorithm_id=algorithm,
        measurements=_measurements(prediction, tag),
    )


def _observation_context(model: SrModel) -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=["detect", model.family, model.run]),
        name="detect", manufacturer_name="detect", model_name=model.family,
    )
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))


def _evidence(series: Series, results: Sequence[SliceResult]) -> list[Dataset]:
    headers = {h.sop_instance_uid: h for h in series.slices}
    read = [headers[r.sop_instance_uid] for r in results if r.sop_instance_uid in headers]
    return evidence_of(series.uid, read)


def _coding_scheme() -> CodingSchemeIdentificationItem:
    """detect's private scheme, declared in the SR (highdicom's ``coding_schemes``)."""
    return CodingSchemeIdentificationItem(
        designator=SCHEME, name="detect histology probabilities",
        responsible_organization="detect",
    )


def _document(evidence: Sequence[Dataset], groups: Sequence[Any], model: SrModel,
              uids: tuple[str, str]) -> hd.sr.Comprehensive3DSR:
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(model),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report, series_instance_uid=uids[0],
        series_number=SR_SERIES_NUMBER, sop_instance_uid=uids[1], instance_number=1,
        manufacturer="detect", is_complete=True, is_final=False,
        series_description=f"detect {model.family} detections"[:64],
        coding_schemes=[_coding_scheme()],
        specific_character_set=character_set(evidence[0]),
    )


def _tracking_uid(sr_uid: str, identifier: str) -> str:
    """A tracking UID derived from the SR's and the identifier: the same result names its
    lesions the same way in every run."""
    return generate_uid(entropy_srcs=["detect-sr-tracking", sr_uid, identifier])


def _tagged(results: Sequence[SliceResult], lesions: SeriesLesions | None, sr_uid: str
            ) -> list[tuple[Prediction, LesionTag]]:
    """Each prediction with its lesion's tag, lesion by lesion; predictions in no lesion
    last, each its own ``detection N``."""
    pairs: list[tuple[Prediction, LesionTag]] = []
    seen: set[int] = set()
    for number, lesion in enumerate(lesions.lesions if lesions else (), start=1):
        name = f"lesion {number}"
        tag = LesionTag(name, _tracking_uid(sr_uid, name), lesion.diameter_mm,
                        lesion.extent_mm)
        for prediction in lesions.lesion_predictions(lesion) if lesions else ():
            pairs.append((prediction, tag))
            seen.add(id(prediction))
    rest = [p for r in results for p in r.predictions if id(p) not in seen]
    pairs += [(p, LesionTag(f"detection {n}", _tracking_uid(sr_uid, f"detection {n}")))
              for n, p in enumerate(rest, start=1)]
    return pairs


def build_series_sr(
    series: Series, results: Sequence[SliceResult], model: SrModel,
    lesions: SeriesLesions | None = None,
) -> hd.sr.Comprehensive3DSR:
    """The SR of one CT series: one measurement group per prediction of ``results``
    (at least one), grouped and tagged by ``lesions`` (the series' lesions), every slice
    of ``results`` as evidence.

    Raises:
        DicomError: the source header cannot be read, or highdicom refuses the content
            (for example no prediction at all).
    """
    evidence = _evidence(series, results)
    sop_class = str(evidence[0].SOPClassUID)
    algorithm = hd.sr.AlgorithmIdentification(
        name=f"detect {model.family}", version=__version__,
        parameters=[f"run={model.run}", f"conf={model.conf}"],
    )
    key = model.key or f"{model.family}|{model.run}|{model.conf!r}"
    uids = sr_uids(key, series.uid, [str(e.SOPInstanceUID) for e in evidence])
    groups = [_group(p, tag, sop_class, algorithm)
              for p, tag in _tagged(results, lesions, uids[1])]
    try:
        with warnings.catch_warnings():
            # highdicom warns about one-component person names such as TCIA's
            # "Lung_Dx-A0002": that is the source's name, copied as it is
            warnings.filterwarnings("ignore", message=".*intended person name",
                                    category=UserWarning)
            sr = _document(evidence, groups, model, uids)
    except (ValueError, TypeError) as exc:  # highdicom's checks of the content
        raise DicomError(f"series {series.uid}: cannot build its DICOM SR ({exc})") from None
    return sr


@dataclass(frozen=True)
class BuiltSr:
    """The SR of one CT series and its place under OUT (``sr/<patient>/<series>.dcm``)."""

    parts: tuple[str, str, str]
    dataset: hd.sr.Comprehensive3DSR


def build_series_srs(
    series: Sequence[Series], results: Sequence[SliceResult], model: SrModel,
    lesions: Sequence[SeriesLesions] = (),
) -> list[BuiltSr]:
    """The SR of every series with findings (while its source files can be re-read),
    grouped and tagged by the series' ``lesions``. A
    series without any gets none: TID 1500 (as highdicom builds it) needs at least one
    measurement group, and a made-up "negative" finding would confuse viewers and queries;
    summary.csv lists every series read, with its count of detections.

    Raises:
        DicomError: a source header cannot be re-read or an SR cannot be built.
    """
    by_series: dict[str, list[SliceResult]] = {}
    for result in results:
        by_series.setdefault(result.series_instance_uid, []).append(result)
    by_uid = {s.series_instance_uid: s for s in lesions}
    built = []
    for one in series:
        mine = by_series.get(one.uid)
        if not mine or not any(r.predictions for r in mine):
            continue
        parts = (SR_DIR, safe_name(mine[0].patient_id), f"{safe_name(one.uid)}.dcm")
        built.append(BuiltSr(parts, build_series_sr(one, mine, model, by_uid.get(one.uid))))
    return built


def save_srs(out: Path, built: Sequence[BuiltSr],
             record: Callable[[str], None] | None = None) -> list[Path]:
    """Write ``out/sr/<patient>/<SeriesInstanceUID>.dcm`` for each built SR, atomically,
    each after ``record`` (OUT's ledger) was told its path.

    Raises:
        OSError: a file cannot be written.
    """
    written = []
    for one in built:
        path = inside(out, *one.parts)
        if record is not None:
            record("/".join(one.parts))
        with atomic_path(path) as tmp:
            one.dataset.save_as(tmp, enforce_file_format=True)
        written.append(path)
    log.info("wrote %d DICOM SR files under %s", len(written), out / SR_DIR)
    return written


def write_series_srs(
    out: Path, series: Sequence[Series], results: Sequence[SliceResult], model: SrModel,
    record: Callable[[str], None] | None = None, lesions: Sequence[SeriesLesions] = (),
) -> list[Path]:
    """:func:`build_series_srs` and :func:`save_srs` in one go.

    Raises:
        DicomError: a source header cannot be re-read or an SR cannot be built.
        OSError: the file cannot be written.
    """
    return save_srs(out, build_series_srs(series, results, model, lesions), record)


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
    """Read an SR written by :func:`write_series_srs`.

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
