"""Two files that claim the same SOPInstanceUID: one instance stored twice, or a conflict.

A SOPInstanceUID names one image worldwide, and annotations find their slice by it. When
two files carry it, taking the first one walked would put one patient's box on another
patient's pixels whenever the second file is the genuine one. So the two are compared:
the same patient, study, series, size, place and pixels (byte for byte, or, when they are
stored differently, the same decoded HU) is one instance stored twice, read once; any
difference is a conflict, and neither file can be trusted for the UID.
"""

from __future__ import annotations

import filecmp
import math
from collections.abc import Sequence

import numpy as np

from detect.errors import DicomError
from detect.io.dicom import SliceHeader, read_hu
from detect.io.dicom_limits import DEFAULT_MAX_PIXELS, read_dataset_bounded

_FIELDS = (
    ("patient_id", "PatientID"),
    ("study_instance_uid", "StudyInstanceUID"),
    ("series_instance_uid", "SeriesInstanceUID"),
    ("modality", "Modality"),
    ("rows", "Rows"),
    ("columns", "Columns"),
    ("samples_per_pixel", "SamplesPerPixel"),
    ("number_of_frames", "NumberOfFrames"),
)


def _same_numbers(a: Sequence[float] | None, b: Sequence[float] | None) -> bool:
    if a is None or b is None:
        return a is b
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, abs_tol=1e-3)
        for x, y in zip(a, b)
    )


def _raw_pixels(header: SliceHeader, max_pixels: int) -> bytes:
    ds = read_dataset_bounded(header.path, stop_before_pixels=False, max_pixels=max_pixels)
    return bytes(ds.get("PixelData") or b"")


def _pixels_differ(a: SliceHeader, b: SliceHeader, max_pixels: int) -> str | None:
    try:
        if filecmp.cmp(a.path, b.path, shallow=False):
            return None
        if _raw_pixels(a, max_pixels) == _raw_pixels(b, max_pixels):
            return None
        if not (a.is_ct and b.is_ct):
            return "different pixel data"
        return None if np.array_equal(read_hu(a.path, max_pixels=max_pixels),
                                      read_hu(b.path, max_pixels=max_pixels)) else \
            "different pixels"
    except (DicomError, OSError) as exc:
        return f"pixels not comparable ({exc})"
    except Exception as exc:  # a hostile file can break pydicom in many ways
        return f"pixels not comparable ({type(exc).__name__})"


def instance_conflict(a: SliceHeader, b: SliceHeader, *,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """None when ``a`` and ``b`` (same SOPInstanceUID) hold one instance (module
    docstring), else what differs, for a message."""
    for field, name in _FIELDS:
        first, second = getattr(a, field), getattr(b, field)
        if first != second:
            return f"{name} {first!r} in one, {second!r} in the other"
    if not _same_numbers(a.position, b.position):
        return f"ImagePositionPatient {a.position} in one, {b.position} in the other"
    if a.size_problem(max_pixels) or b.size_problem(max_pixels):
        return "one declares more pixels than the limit; not compared"
    return _pixels_differ(a, b, max_pixels)
