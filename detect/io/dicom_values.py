"""Header values that become HU or geometry, checked before they are used.

A CT slice's HU are ``stored × RescaleSlope + RescaleIntercept``, and its place in the
series comes from ImagePositionPatient projected on the normal of ImageOrientationPatient.
A slope of NaN, 0, -1 or 1e308 gives black or garbage pixels that still carry their
boxes; a NaN orientation reorders a series silently. So every such value must be a finite
number in a plausible range, or the slice is not used (``implausible-value``):

- RescaleSlope in [:data:`SLOPE_RANGE`]: CT writes 1 (a few scanners 0.5 or 2); the
  widest real encodings (16-bit stored values over a 4096 HU span, or 8-bit over the same
  span) need 1/16 to 16, so the band has two orders of magnitude of margin each way.
- RescaleIntercept within ±:data:`INTERCEPT_LIMIT_HU`: real CT writes -1024, -1000, 0
  or -8192; an intercept beyond 32768 HU moves every pixel out of the CT scale.
- PixelSpacing, SliceThickness and SpacingBetweenSlices in (0, :data:`SPACING_MAX_MM`]:
  CT pixels are 0.3-1.5 mm (5.5 mm for a 128 px attenuation-correction CT), slices
  0.5-10 mm.
- ImagePositionPatient within ±:data:`POSITION_LIMIT_MM` on each axis (a scanner's
  patient space is a few metres at most).
- ImageOrientationPatient: two unit vectors (within :data:`UNIT_TOLERANCE`) at right
  angles (cosine within the same tolerance); DICOM writes them with 6 decimals or fewer.

A value that is absent is not implausible: what is mandatory is checked elsewhere
(:class:`~detect.io.dicom.MissingRescaleError`) and a missing position falls back to
InstanceNumber order. A value that is present but not a number (``"abc"``, a wrong count)
is read as NaN, so it is refused rather than taken as absent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from detect.errors import DicomError

SLOPE_RANGE = (1e-3, 1e3)
INTERCEPT_LIMIT_HU = 32768.0
SPACING_MAX_MM = 100.0
PIXEL_SPACING_MAX_MM = 20.0
POSITION_LIMIT_MM = 10_000.0
UNIT_TOLERANCE = 0.01


class ImplausibleValueError(DicomError):
    """A header value that enters HU or geometry is not a finite number in its plausible
    range, or the HU after the modality LUT are not finite."""


def numbers(value: Any, count: int) -> tuple[float, ...] | None:
    """``count`` floats from a header value; None when it is absent or empty; NaNs when it
    is present but not ``count`` numbers (so a check refuses it)."""
    if value is None or value == "":
        return None
    items = [value] if isinstance(value, (str, bytes, int, float)) else value
    try:
        floats = tuple(float(v) for v in items)
    except (TypeError, ValueError, OverflowError):
        return (math.nan,) * count
    return floats if len(floats) == count else (math.nan,) * count


def number(value: Any) -> float | None:
    """One float from a header value (see :func:`numbers`)."""
    found = numbers(value, 1)
    return None if found is None else found[0]


def _range(name: str, value: float | None, low: float, high: float, unit: str,
           *, open_low: bool = False) -> str | None:
    if value is None:
        return None
    ok = math.isfinite(value) and (low < value if open_low else low <= value) and value <= high
    if ok:
        return None
    bracket = "(" if open_low else "["
    return f"{name} {value:g} is not in {bracket}{low:g}, {high:g}] {unit}".rstrip()


def _text(values: Sequence[float]) -> str:
    return "\\".join(f"{v:g}" for v in values)


def _orientation(orientation: Sequence[float]) -> str | None:
    values = np.asarray(orientation, dtype=np.float64)
    text = _text(orientation)
    if not np.isfinite(values).all():
        return f"ImageOrientationPatient {text} holds a value that is not a finite number"
    row, col = values[:3], values[3:]
    norms = (float(np.linalg.norm(row)), float(np.linalg.norm(col)))
    if max(abs(n - 1.0) for n in norms) > UNIT_TOLERANCE:
        return (f"ImageOrientationPatient {text}: direction cosines of length "
                f"{norms[0]:.3g} and {norms[1]:.3g}, expected 1")
    if abs(float(np.dot(row, col))) > UNIT_TOLERANCE:
        return (f"ImageOrientationPatient {text}: row and column directions are not at right "
                f"angles (cosine {float(np.dot(row, col)):.3g})")
    return None


def orientation_ok(orientation: Sequence[float] | None) -> bool:
    """Whether ImageOrientationPatient gives a usable slice normal."""
    return orientation is not None and _orientation(orientation) is None


def position_ok(position: Sequence[float] | None) -> bool:
    """Whether ImagePositionPatient can place the slice."""
    return position is not None and all(
        math.isfinite(v) and abs(v) <= POSITION_LIMIT_MM for v in position
    )


def value_problem(
    *,
    slope: float | None,
    intercept: float | None,
    pixel_spacing: Sequence[float] | None = None,
    position: Sequence[float] | None = None,
    orientation: Sequence[float] | None = None,
    thickness: float | None = None,
    spacing: float | None = None,
) -> str | None:
    """Why these values cannot be trusted (module docstring), or None."""
    problems = [
        _range("RescaleSlope", slope, *SLOPE_RANGE, ""),
        _range("RescaleIntercept", intercept, -INTERCEPT_LIMIT_HU, INTERCEPT_LIMIT_HU, "HU"),
        _range("SliceThickness", thickness, 0.0, SPACING_MAX_MM, "mm", open_low=True),
        _range("SpacingBetweenSlices", spacing, 0.0, SPACING_MAX_MM, "mm", open_low=True),
    ]
    for axis, value in zip("xy", pixel_spacing or ()):
        problems.append(_range(f"PixelSpacing ({axis})", value, 0.0, PIXEL_SPACING_MAX_MM,
                               "mm", open_low=True))
    if position is not None and not position_ok(position):
        problems.append(
            f"ImagePositionPatient {_text(position)} is not three finite numbers within "
            f"±{POSITION_LIMIT_MM:g} mm"
        )
    if orientation is not None:
        problems.append(_orientation(orientation))
    found = [p for p in problems if p is not None]
    if not found:
        return None
    return "; ".join(found) + "; its HU or place in the series cannot be trusted, so it is not used"


def dataset_value_problem(ds: Any) -> str | None:
    """:func:`value_problem` of a pydicom dataset's values."""
    return value_problem(
        slope=number(ds.get("RescaleSlope")),
        intercept=number(ds.get("RescaleIntercept")),
        pixel_spacing=numbers(ds.get("PixelSpacing"), 2),
        position=numbers(ds.get("ImagePositionPatient"), 3),
        orientation=numbers(ds.get("ImageOrientationPatient"), 6),
        thickness=number(ds.get("SliceThickness")),
        spacing=number(ds.get("SpacingBetweenSlices")),
    )


def check_hu(hu: np.ndarray, name: str) -> np.ndarray:
    """``hu`` if every value is finite.

    Raises:
        ImplausibleValueError: a NaN or infinite HU (float pixel data, an overflowing LUT).
    """
    finite = np.isfinite(hu)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        raise ImplausibleValueError(
            f"{name}: {bad:,} of {finite.size:,} pixels are not finite HU after the modality "
            f"LUT; not used"
        )
    return hu
