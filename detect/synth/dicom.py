"""DICOM files and folder names of the phantom cohort, as TCIA distributes Lung-PET-CT-Dx.

Folder names follow the NBIA Data Retriever ("descriptive" layout)::

    Lung_Dx-A0001/<MM-DD-YYYY>-NA-<study description>-<last 5 of study UID>/
        <series number>.000000-<series description>-<last 5 of series UID>/1-NN.dcm

Descriptions keep their spaces (double spaces included) and lose characters that are
not letters, digits, space, ``.``, ``_`` or ``-`` (``Thorax^AThoraxRoutine (Adult)`` →
``ThoraxAThoraxRoutine Adult``, as in the real download). File numbers have two digits,
more when a series has 100 or more files (``1-001.dcm`` .. ``1-120.dcm``), the width of
the largest number, so names sort in numeric order. With the ``uid`` layout study and
series folders are their UIDs and files ``<SOPInstanceUID>.dcm``.

Every file is DICOM Part 10 (preamble, file meta) written by pydicom.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from detect import __version__

CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")
SECONDARY_CAPTURE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.7")
PET_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.128")
SOP_CLASS_NAMES = {
    CT_IMAGE_STORAGE: "CT Image Storage",
    SECONDARY_CAPTURE_STORAGE: "Secondary Capture Image Storage",
    PET_IMAGE_STORAGE: "Positron Emission Tomography Image Storage",
}
TRANSFER_SYNTAXES = {
    "explicit": ExplicitVRLittleEndian,
    "rle": RLELossless,
    "j2k": JPEG2000Lossless,
}
_UNSAFE = re.compile(r"[^A-Za-z0-9 ._-]")


def nbia_text(text: str) -> str:
    """A description as the NBIA retriever puts it in a folder name."""
    return _UNSAFE.sub("", text).strip()


def study_folder(date: str, description: str, uid: str, layout: str) -> str:
    """``MM-DD-YYYY-NA-<description>-<last 5 of uid>`` from a DICOM date ``YYYYMMDD``."""
    if layout == "uid":
        return uid
    return f"{date[4:6]}-{date[6:8]}-{date[0:4]}-NA-{nbia_text(description)}-{uid[-5:]}"


def series_folder(number: int, description: str, uid: str, layout: str) -> str:
    """``<number>.000000-<description>-<last 5 of uid>``."""
    if layout == "uid":
        return uid
    return f"{number}.000000-{nbia_text(description)}-{uid[-5:]}"


def file_name(number: int, count: int, sop_uid: str, layout: str) -> str:
    """``1-NN.dcm`` (width: 2, or the digits of ``count`` past 99) or ``<uid>.dcm``."""
    if layout == "uid":
        return f"{sop_uid}.dcm"
    return f"1-{number:0{max(2, len(str(count)))}d}.dcm"


def ds_text(value: float) -> str:
    """A decimal string of at most 16 characters (DICOM DS)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True)
class StudyInfo:
    """Patient, study and equipment attributes shared by a patient's series."""

    patient_id: str
    sex: str
    age: str
    weight_kg: float
    study_uid: str
    frame_uid: str
    date: str
    time: str
    description: str
    manufacturer: str
    model: str
    kernel: str


@dataclass(frozen=True)
class SeriesInfo:
    """One series: UID, number, description, time (HHMMSS.ffffff)."""

    uid: str
    number: int
    description: str
    time: str


def _common(study: StudyInfo, series: SeriesInfo, sop_class: UID, sop_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta.ImplementationVersionName = f"DETECT_{__version__}"[:16]
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, UID(sop_uid)
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study.date
    ds.StudyTime = study.time
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = series.time
    ds.AccessionNumber, ds.ReferringPhysicianName = "", ""
    ds.Manufacturer, ds.ManufacturerModelName = study.manufacturer, study.model
    ds.StudyDescription, ds.SeriesDescription = study.description, series.description
    ds.PatientName = ds.PatientID = study.patient_id
    ds.PatientBirthDate, ds.PatientSex, ds.PatientAge = "", study.sex, study.age
    ds.PatientWeight = ds_text(study.weight_kg)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "synthetic phantom (detect synth); no patient data"
    ds.BodyPartExamined = "CHEST"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = UID(study.study_uid), UID(series.uid)
    ds.StudyID, ds.SeriesNumber = "", series.number
    ds.ImageComments = ""
    return ds


def _grey_pixels(ds: Dataset, stored: np.ndarray, signed: bool, bits_stored: int) -> None:
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = np.ascontiguousarray(stored, dtype="<i2" if signed else "<u2").tobytes()
    ds["PixelData"].VR = "OW"


def _plane(
    ds: Dataset, position: tuple[float, float, float], spacing_mm: float, thickness_mm: float
) -> None:
    ds.ImagePositionPatient = [ds_text(v) for v in position]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PixelSpacing = [ds_text(spacing_mm), ds_text(spacing_mm)]
    ds.SliceThickness = ds_text(thickness_mm)
    ds.SliceLocation = ds_text(position[2])
    ds.PositionReferenceIndicator = ""


def ct_dataset(
    study: StudyInfo,
    series: SeriesInfo,
    *,
    sop_uid: str,
    instance: int,
    position: tuple[float, float, float],
    spacing_mm: float,
    thickness_mm: float,
    hu: np.ndarray,
    signed: bool,
) -> Dataset:
    """A CT Image Storage slice from HU (rounded). Unsigned: 12 bits stored, intercept
    -1024; signed: 16 bits stored, intercept 0. Same HU either way.
    """
    ds = _common(study, series, CT_IMAGE_STORAGE, sop_uid)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Modality = "CT"
    ds.SoftwareVersions, ds.ProtocolName = "synthetic", "ThoraxRoutine"
    ds.KVP, ds.SliceThickness = "120", ds_text(thickness_mm)
    ds.DataCollectionDiameter = "500"
    ds.ReconstructionDiameter = ds_text(spacing_mm * hu.shape[1])
    ds.DistanceSourceToDetector, ds.DistanceSourceToPatient = "1040", "570"
    ds.GantryDetectorTilt, ds.TableHeight, ds.RotationDirection = "0", "129", "CW"
    ds.ExposureTime, ds.XRayTubeCurrent, ds.Exposure = 500, 180, 90
    ds.FilterType, ds.GeneratorPower, ds.FocalSpots = "0", 30, "1.2"
    ds.DateOfLastCalibration, ds.TimeOfLastCalibration = study.date, "070000.000000"
    ds.ConvolutionKernel, ds.PatientPosition = study.kernel, "HFS"
    ds.AcquisitionNumber, ds.InstanceNumber = 1, instance
    ds.FrameOfReferenceUID = UID(study.frame_uid)
    _plane(ds, position, spacing_mm, thickness_mm)
    rounded = np.rint(hu)
    stored = rounded if signed else rounded + 1024.0
    pixels = stored.astype(np.int16 if signed else np.uint16)
    _grey_pixels(ds, pixels, signed, 16 if signed else 12)
    ds.SmallestImagePixelValue, ds.LargestImagePixelValue = int(pixels.min()), int(pixels.max())
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    ds.WindowCenter, ds.WindowWidth = ["-600", "40"], ["1200", "350"]
    ds.WindowCenterWidthExplanation = ["WINDOW1", "WINDOW2"]
    ds.RescaleIntercept = "0" if signed else "-1024"
    ds.RescaleSlope, ds.RescaleType = "1", "HU"
    return ds


def fused_dataset(
    study: StudyInfo, series: SeriesInfo, *, sop_uid: str, instance: int, rgb: np.ndarray
) -> Dataset:
    """A fused PET/CT screenshot: Secondary Capture, Modality CT, 8-bit RGB, interleaved."""
    ds = _common(study, series, SECONDARY_CAPTURE_STORAGE, sop_uid)
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.Modality, ds.ConversionType = "CT", "WSD"
    ds.InstanceNumber = instance
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    ds["PixelData"].VR = "OB"
    return ds


def pet_dataset(
    study: StudyInfo,
    series: SeriesInfo,
    *,
    sop_uid: str,
    instance: int,
    count: int,
    position: tuple[float, float, float],
    spacing_mm: float,
    thickness_mm: float,
    bqml: np.ndarray,
    injection_time: str,
) -> Dataset:
    """A PET Image Storage slice of activity (Bq/ml), decay-corrected to the series start."""
    ds = _common(study, series, PET_IMAGE_STORAGE, sop_uid)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Modality, ds.Units, ds.SeriesType = "PT", "BQML", ["WHOLE BODY", "IMAGE"]
    ds.CorrectedImage, ds.DecayCorrection = ["ATTN", "DECY", "SCAT", "RAN"], "START"
    ds.CountsSource, ds.NumberOfSlices, ds.ImageIndex = "EMISSION", count, instance
    item = Dataset()
    item.Radiopharmaceutical = "Fluorodeoxyglucose"
    item.RadiopharmaceuticalStartTime = injection_time
    item.RadionuclideTotalDose, item.RadionuclideHalfLife = "370000000", "6586.2"
    item.RadionuclidePositronFraction = "0.9673"
    ds.RadiopharmaceuticalInformationSequence = Sequence([item])
    ds.PatientPosition, ds.AcquisitionNumber, ds.InstanceNumber = "HFS", 1, instance
    ds.FrameOfReferenceUID = UID(study.frame_uid)
    _plane(ds, position, spacing_mm, thickness_mm)
    top = float(bqml.max())
    slope = float(ds_text(max(top, 1.0) / 32767.0))
    stored = np.clip(np.rint(bqml / slope), 0, 65535).astype(np.uint16)
    _grey_pixels(ds, stored, False, 16)
    ds.RescaleIntercept, ds.RescaleSlope = "0", ds_text(slope)
    return ds


def write_dataset(ds: Dataset, path: Path, syntax: str = "explicit") -> None:
    """Write ``ds`` as a Part 10 file, compressed as ``syntax`` (explicit, rle or j2k).

    Raises:
        KeyError: for another syntax name.
    """
    uid = TRANSFER_SYNTAXES[syntax]
    if uid != ExplicitVRLittleEndian:  # keep our UID: pydicom would draw a random one
        ds.compress(uid, generate_instance_uid=False)
    buffer = io.BytesIO()  # one write() per file: pydicom writes element by element
    ds.save_as(buffer, enforce_file_format=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())


# --- per-patient metadata -----------------------------------------------------------------

#: (manufacturer, model, kernel, protocol, study description); descriptions as in the
#: real collection, ``^`` and parentheses included (they vanish from folder names).
_EQUIPMENT = (
    ("SIEMENS", "Sensation 10", "B70f", "ThoraxRoutine", "Thorax^AThoraxRoutine (Adult)"),
    ("SIEMENS", "Biograph 16", "B31f", "WholeBody", "PET^PETCT_WholeBody (Adult)"),
    ("GE MEDICAL SYSTEMS", "Discovery ST", "STANDARD", "Chest", "PET CT  Chest"),
)


def _clock(seconds: float) -> str:
    seconds = seconds % 86400.0
    hours, rest = divmod(seconds, 3600.0)
    minutes, secs = divmod(rest, 60.0)
    return f"{int(hours):02d}{int(minutes):02d}{secs:09.6f}"


def make_study(
    rng: np.random.Generator, patient_id: str, study_uid: str, frame_uid: str
) -> StudyInfo:
    """Deterministic patient, study and equipment attributes (dates 2006-2012)."""
    manufacturer, model, kernel, _, description = _EQUIPMENT[int(rng.integers(len(_EQUIPMENT)))]
    year, month, day = (int(rng.integers(lo, hi)) for lo, hi in ((2006, 2013), (1, 13), (1, 29)))
    date = f"{year}{month:02d}{day:02d}"
    return StudyInfo(
        patient_id=f"Lung_Dx-{patient_id}",
        sex="M" if rng.random() < 0.6 else "F",
        age=f"{int(rng.integers(38, 86)):03d}Y",
        weight_kg=round(float(rng.uniform(48.0, 95.0)), 1),
        study_uid=study_uid,
        frame_uid=frame_uid,
        date=date,
        time=_clock(float(rng.uniform(8.0, 16.0)) * 3600.0),
        description=description,
        manufacturer=manufacturer,
        model=model,
        kernel=kernel,
    )


def series_infos(
    rng: np.random.Generator, study: StudyInfo, thickness_mm: float, uid: Callable[..., str]
) -> dict[str, SeriesInfo]:
    """The CT, PET and fused series of a study (numbers, descriptions, times)."""
    protocol = next(e[3] for e in _EQUIPMENT if e[4] == study.description)
    start = int(study.time[:2]) * 3600 + int(study.time[2:4]) * 60 + float(study.time[4:])
    ct_number = int(rng.integers(2, 4))
    return {
        "ct": SeriesInfo(
            uid("series", "ct"),
            ct_number,
            f"{protocol}  {thickness_mm:.1f}  {study.kernel}",
            _clock(start + 90.0),
        ),
        "pet": SeriesInfo(uid("series", "pet"), 4, "PET  AC  WB", _clock(start + 1200.0)),
        "fused": SeriesInfo(uid("series", "fused"), 5, "PET-CT  Fusion", _clock(start + 2700.0)),
    }


def numbering(ordering: str, uids: list[str]) -> tuple[list[int], list[int]]:
    """InstanceNumber and file number of each slice (index 0 = lowest z).

    Raises:
        ValueError: for an unknown ordering.
    """
    count = len(uids)
    from_top = [count - 1 - g for g in range(count)]
    if ordering in ("head-first", "files-by-uid"):
        instance = [k + 1 for k in from_top]
    elif ordering == "feet-first":
        instance = [g + 1 for g in range(count)]
    elif ordering == "interleaved":
        first = (count + 1) // 2
        instance = [k // 2 + 1 if k % 2 == 0 else first + k // 2 + 1 for k in from_top]
    else:
        raise ValueError(f"unknown slice ordering {ordering!r}")
    if ordering == "files-by-uid":
        rank = {uid: i + 1 for i, uid in enumerate(sorted(uids))}
        return instance, [rank[uid] for uid in uids]
    return instance, list(instance)
