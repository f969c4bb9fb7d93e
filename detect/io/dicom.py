"""DICOM reading: headers without pixels, HU through the modality LUT.

Nothing here trusts file or folder names: identity comes from UIDs in the header (the
order of a series is :mod:`detect.io.slice_order`'s). Nothing trusts declared sizes
either: pixels are decoded only after the declared size, and the size the compressed
codestream itself declares, passed the limit (:mod:`detect.io.dicom_limits`,
:mod:`detect.io.codestream`). A CT slice is read as HU only with its RescaleSlope and
RescaleIntercept (Type 1 in the CT Image module; without them the HU would be a guess,
off by the usual intercept of -1024), and only when they and its geometry are plausible
and the HU come out finite (:mod:`detect.io.dicom_values`).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut
from pydicom.tag import Tag

from detect.errors import DicomError
from detect.io.codestream import check_codestream
from detect.io.dicom_limits import (
    DEFAULT_MAX_PIXELS,
    ImageTooLargeError,
    check_dataset_size,
    read_dataset_bounded,
    size_problem,
)
from detect.io.dicom_values import (
    ImplausibleValueError,
    check_hu,
    dataset_value_problem,
    number,
    numbers,
    value_problem,
)

log = logging.getLogger(__name__)

#: SOP classes of the secondary captures (fused PET/CT screenshots in Lung-PET-CT-Dx).
SECONDARY_CAPTURE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.1",
        "1.2.840.10008.5.1.4.1.1.7.2",
        "1.2.840.10008.5.1.4.1.1.7.3",
        "1.2.840.10008.5.1.4.1.1.7.4",
    }
)
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"

_HEADER_TAGS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "PatientID",
    "Modality",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "InstanceNumber",
    "SeriesNumber",
    "AcquisitionNumber",
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "NumberOfFrames",
    "SeriesDescription",
    "PixelSpacing",
    "RescaleSlope",
    "RescaleIntercept",
    "SliceThickness",
    "SpacingBetweenSlices",
]
_TAGS: dict[str, int] = {k: int(tag_for_keyword(k) or 0) for k in _HEADER_TAGS}
#: The same as tags, for dcmread: pydicom resolves keywords again on every read.
_HEADER_TAG_LIST = [Tag(_TAGS[k]) for k in _HEADER_TAGS]
_ASCII_VRS = frozenset({"UI", "CS", "DS", "IS", "AS", "DA", "TM", "DT"})
#: Single-valued text VRs read here (PatientID, SeriesDescription); see :func:`_value`.
_TEXT_VRS = frozenset({"LO", "SH"})


class NotDicomError(DicomError):
    """The file is not a DICOM Part 10 file."""


class MissingRescaleError(DicomError):
    """A CT slice without RescaleSlope/RescaleIntercept: its HU cannot be known."""


def decode_issue_kind(exc: DicomError, default: str) -> str:
    """The kind a slice that failed to decode is reported as (convert's issues, predict's
    skipped.csv): a size over the limit, no rescale, an implausible header value, else
    ``default``."""
    for error, kind in ((ImageTooLargeError, "image-too-large"),
                        (MissingRescaleError, "missing-rescale"),
                        (ImplausibleValueError, "implausible-value")):
        if isinstance(exc, error):
            return kind
    return default


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageTooLargeError",
    "ImplausibleValueError",
    "MissingRescaleError",
    "NotDicomError",
    "SliceHeader",
    "decode_issue_kind",
    "read_header",
    "read_hu",
    "read_rgb",
]

_RESCALE_MISSING = (
    "CT slice without RescaleSlope/RescaleIntercept (Type 1 in the CT Image module); "
    "its HU would be a guess (usually 1024 off), so it is not used"
)


@dataclass(frozen=True, slots=True)
class SliceHeader:
    """What the index keeps of one DICOM file (no pixels). Positions in mm. Slotted: the
    index of a whole collection holds a quarter of a million of them. Rescale values are
    None when absent and NaN when present but not a number
    (:func:`detect.io.dicom_values.numbers`); thickness and spacing in mm."""

    path: Path
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    patient_id: str
    modality: str
    sop_class_uid: str
    rows: int
    columns: int
    samples_per_pixel: int
    photometric: str
    number_of_frames: int
    instance_number: int | None
    position: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    series_description: str
    pixel_spacing: tuple[float, float] | None
    rescale_slope: float | None = 1.0
    rescale_intercept: float | None = 0.0
    slice_thickness: float | None = None
    slice_spacing: float | None = None
    series_number: int | None = None
    acquisition_number: int | None = None

    @property
    def has_rescale(self) -> bool:
        """Whether RescaleSlope and RescaleIntercept are both present."""
        return self.rescale_slope is not None and self.rescale_intercept is not None

    @property
    def is_fused(self) -> bool:
        """A secondary capture or a colour image: the fused PET/CT screenshots."""
        return (
            self.sop_class_uid in SECONDARY_CAPTURE_CLASSES
            or self.samples_per_pixel != 1
            or self.photometric not in ("MONOCHROME1", "MONOCHROME2")
        )

    @property
    def is_ct(self) -> bool:
        """A plain CT slice (not a fused screenshot that also says Modality CT)."""
        return self.modality == "CT" and not self.is_fused

    def size_problem(self, max_pixels: int) -> str | None:
        """Why the declared image size is refused, or None if it fits ``max_pixels``."""
        return size_problem(self.rows, self.columns, self.samples_per_pixel,
                            self.number_of_frames, max_pixels)

    @property
    def rescale_problem(self) -> str | None:
        """Why a CT slice's HU cannot be trusted (no rescale), or None."""
        return None if self.has_rescale or not self.is_ct else _RESCALE_MISSING

    @property
    def value_problem(self) -> str | None:
        """Why a CT slice's HU or geometry values cannot be trusted
        (:func:`detect.io.dicom_values.value_problem`), or None."""
        if not self.is_ct:
            return None
        return value_problem(
            slope=self.rescale_slope, intercept=self.rescale_intercept,
            pixel_spacing=self.pixel_spacing, position=self.position,
            orientation=self.orientation, thickness=self.slice_thickness,
            spacing=self.slice_spacing,
        )

    def unusable(self, max_pixels: int) -> tuple[str, str] | None:
        """Why this file is not a plain CT slice a model can read, as (reason, detail), or
        None. Reasons, in the order checked: ``image-too-large``, ``fused`` (a fused PET/CT
        screenshot), ``pet``, ``not-ct``, ``multi-frame``, ``missing-rescale``,
        ``implausible-value`` (:attr:`value_problem`). Predict reports them as they are;
        convert maps them to its accounting kinds."""
        too_large = self.size_problem(max_pixels)
        if too_large is not None:
            return "image-too-large", too_large
        if self.is_fused:
            return "fused", (
                f"fused/secondary-capture image (SOP class {self.sop_class_uid}, "
                f"{self.samples_per_pixel} samples, {self.photometric})"
            )
        if self.modality == "PT":
            return "pet", "PET slice (Modality PT); the models read CT"
        if self.modality != "CT":
            return "not-ct", f"Modality {self.modality or 'missing'}; the models read CT"
        if self.number_of_frames > 1:
            return "multi-frame", f"multi-frame image ({self.number_of_frames} frames)"
        if self.rescale_problem:
            return "missing-rescale", self.rescale_problem
        problem = self.value_problem
        return None if problem is None else ("implausible-value", problem)


def _value(ds: pydicom.Dataset, keyword: str) -> Any:
    """One header value, without pydicom's full element conversion where it is safe.

    Indexing reads every file of a cohort, and converting elements is most of its CPU
    time. UIDs, code strings and numbers are ASCII by the standard, so their raw bytes are
    decoded directly (US as binary); anything else (person names, free text with a
    character set, already converted elements) goes through pydicom.
    """
    tag = _TAGS[keyword]
    raw = ds.get_item(tag)
    if raw is None:
        return None
    if not isinstance(raw, RawDataElement) or raw.value is None:
        return ds[tag].value
    vr = raw.VR or dictionary_VR(tag)
    if vr in _ASCII_VRS:
        parts = raw.value.decode("ascii", "replace").strip(" \x00").split("\\")
        return parts if len(parts) > 1 else parts[0]
    if vr in _TEXT_VRS and raw.value.isascii() and b"\x1b" not in raw.value:
        # plain ASCII without an ISO 2022 escape reads the same under every character set
        # DICOM allows (all are ASCII-compatible until an escape switches them)
        text = raw.value.decode("ascii").rstrip(" \x00").split("\\")  # as pydicom: keep
        return text if len(text) > 1 else text[0]  # leading spaces, split multi-values
    if vr == "US" and len(raw.value) >= 2:
        return struct.unpack_from("<H" if raw.is_little_endian else ">H", raw.value)[0]
    return ds[tag].value


def _int(value: Any, default: int | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def read_header(path: Path) -> SliceHeader:
    """Read the header of one file, without its pixel data.

    Raises:
        NotDicomError: the file is not DICOM (no preamble/meta, or unparseable).
        DicomError: DICOM, but without the UIDs or image attributes a slice needs.
    """
    try:
        ds = read_dataset_bounded(path, stop_before_pixels=True, specific_tags=_HEADER_TAG_LIST)
        values = {keyword: _value(ds, keyword) for keyword in _HEADER_TAGS}
    except InvalidDicomError:
        raise NotDicomError(f"{path.name}: not a DICOM file (no DICM preamble)") from None
    except DicomError:
        raise
    except OSError:
        raise  # I/O, not content: the callers report it as unreadable
    except Exception as exc:  # a hostile header can break pydicom in many ways
        raise NotDicomError(f"{path.name}: cannot parse as DICOM ({exc})") from None
    missing = [k for k in ("SOPInstanceUID", "SeriesInstanceUID", "Rows", "Columns")
               if values[k] in (None, "")]
    if missing:
        raise DicomError(f"{path.name}: DICOM without {', '.join(missing)}; not an image slice")
    return SliceHeader(
        path=path,
        sop_instance_uid=str(values["SOPInstanceUID"]),
        series_instance_uid=str(values["SeriesInstanceUID"]),
        study_instance_uid=str(values["StudyInstanceUID"] or ""),
        patient_id=str(values["PatientID"] or ""),
        modality=str(values["Modality"] or ""),
        sop_class_uid=str(values["SOPClassUID"] or ""),
        rows=int(values["Rows"]),
        columns=int(values["Columns"]),
        samples_per_pixel=_int(values["SamplesPerPixel"], 1) or 1,
        photometric=str(values["PhotometricInterpretation"] or "MONOCHROME2"),
        number_of_frames=_int(values["NumberOfFrames"], 1) or 1,
        instance_number=_int(values["InstanceNumber"], None),
        position=numbers(values["ImagePositionPatient"], 3),  # type: ignore[arg-type]
        orientation=numbers(values["ImageOrientationPatient"], 6),  # type: ignore[arg-type]
        series_description=str(values["SeriesDescription"] or ""),
        pixel_spacing=numbers(values["PixelSpacing"], 2),  # type: ignore[arg-type]
        rescale_slope=number(values["RescaleSlope"]),
        rescale_intercept=number(values["RescaleIntercept"]),
        slice_thickness=number(values["SliceThickness"]),
        slice_spacing=number(values["SpacingBetweenSlices"]),
        series_number=_int(values["SeriesNumber"], None),
        acquisition_number=_int(values["AcquisitionNumber"], None),
    )


def _pixels(path: Path, max_pixels: int, *, ct: bool) -> tuple[pydicom.Dataset, np.ndarray]:
    """The dataset and its decoded pixels, after the size (and, for CT, rescale) checks."""
    try:
        ds = read_dataset_bounded(path, stop_before_pixels=False, max_pixels=max_pixels)
        check_dataset_size(ds, max_pixels, path.name)
        if ct and str(ds.get("Modality", "")) == "CT" and not (
            "RescaleSlope" in ds and "RescaleIntercept" in ds
        ):
            raise MissingRescaleError(f"{path.name}: {_RESCALE_MISSING}")
        if ct and str(ds.get("Modality", "")) == "CT":
            problem = dataset_value_problem(ds)
            if problem is not None:
                raise ImplausibleValueError(f"{path.name}: {problem}")
        check_codestream(ds, max_pixels, path.name)
        return ds, ds.pixel_array
    except DicomError:
        raise
    except (InvalidDicomError, OSError, EOFError) as exc:
        raise DicomError(f"{path.name}: cannot read pixels ({exc})") from None
    except Exception as exc:  # pixel decoders raise many kinds; a bad file is one skip
        raise DicomError(f"{path.name}: cannot decode pixels ({exc})") from None


def read_hu(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode one CT slice to Hounsfield units (float32, rows × columns).

    Stored values go through the modality LUT (RescaleSlope/Intercept or a LUT sequence),
    so unsigned-with-intercept and signed storage give the same HU. Compressed transfer
    syntaxes decode through pylibjpeg's plugins.

    Raises:
        ImageTooLargeError: the file (or its compressed codestream) declares more than
            ``max_pixels`` pixel samples, or a codestream larger than Rows x Columns.
        MissingRescaleError: a CT slice without RescaleSlope/RescaleIntercept.
        ImplausibleValueError: a CT slice whose rescale or geometry values are not
            plausible (:mod:`detect.io.dicom_values`), or whose HU are not finite.
        DicomError: the pixels cannot be decoded, or the image is not single-frame grey.
    """
    ds, stored = _pixels(path, max_pixels, ct=True)
    if stored.ndim != 2:
        raise DicomError(
            f"{path.name}: expected one grey frame (2 dims), got pixel array of shape "
            f"{tuple(stored.shape)}"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        hu = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    check_hu(hu, path.name)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        log.debug("%s is MONOCHROME1; HU from the modality LUT are unaffected", path.name)
    return hu


def read_rgb(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a colour (fused secondary capture) image to uint8 RGB, rows × columns × 3.

    Raises:
        ImageTooLargeError: the file declares more than ``max_pixels`` pixel samples.
        DicomError: the pixels cannot be decoded.
    """
    ds, pixels = _pixels(path, max_pixels, ct=False)
    try:
        if str(ds.get("PhotometricInterpretation", "")).startswith("YBR"):
            from pydicom.pixels import convert_color_space

            pixels = convert_color_space(pixels, ds.PhotometricInterpretation, "RGB")
    except Exception as exc:
        raise DicomError(f"{path.name}: cannot decode pixels ({exc})") from None
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.dtype != np.uint8:
        top = float(pixels.max()) or 1.0
        pixels = (pixels.astype(np.float32) * (255.0 / top)).astype(np.uint8)
    return np.ascontiguousarray(pixels[:, :, :3])
