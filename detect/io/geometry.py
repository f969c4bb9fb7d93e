"""Where the slices of one CT series lie in the patient, in mm, from their headers.

DICOM places a slice by ImagePositionPatient (the centre of its first pixel, LPS mm),
ImageOrientationPatient (the directions of a row and of a column) and PixelSpacing (row
spacing, column spacing, mm). A pixel-edge point (x, y) of detect's boxes
(:mod:`detect.boxes`: (0, 0) is the top-left corner of the first pixel) lies at
``origin + (x - 0.5) * column_spacing * row_direction + (y - 0.5) * row_spacing *
column_direction``.

A series is a volume only when every slice has a finite position and the same
orientation and pixel spacing; otherwise the parts that are missing are None and the
callers fall back to slice indices and pixels (and say so). A value beyond a kilometre is
read as missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detect.io.dicom import SliceHeader
from detect.io.slice_order import slice_normal

Vector = tuple[float, float, float]
#: Orientation cosines and pixel spacings that differ by less than this are the same.
_SAME = 1e-3
#: No position or spacing of a patient reaches a kilometre: a larger value is a broken or
#: hostile header (and would overflow the arithmetic below), read as missing.
_LIMIT_MM = 1e6


@dataclass(frozen=True)
class SeriesGeometry:
    """The geometry of a series' slices, in the order given (detect's sorted order).

    ``positions_mm``: each slice's position along the series normal (None when a slice
    has none); ``spacing_mm``: the median gap between distinct positions (None without
    positions; 1.0 when all slices share one position); ``pixel_mm``: (row spacing,
    column spacing), None when missing or not the same on every slice; ``origins``: each
    slice's ImagePositionPatient (LPS mm), None as ``positions_mm``.
    """

    positions_mm: tuple[float, ...] | None
    spacing_mm: float | None
    pixel_mm: tuple[float, float] | None
    origins: tuple[Vector, ...] | None
    row_direction: Vector = (1.0, 0.0, 0.0)
    column_direction: Vector = (0.0, 1.0, 0.0)

    @property
    def normal(self) -> Vector:
        """The slice normal (row direction x column direction)."""
        return slice_normal((*self.row_direction, *self.column_direction))

    @property
    def in_mm(self) -> bool:
        """Every slice can be placed in the patient in mm."""
        return self.origins is not None and self.pixel_mm is not None

    def patient_points(self, index: int, points: np.ndarray) -> np.ndarray:
        """Pixel-edge (x, y) points of slice ``index`` (N x 2) in patient LPS mm (N x 3).

        Raises:
            ValueError: the series cannot be placed in mm (``in_mm`` is False).
        """
        if self.origins is None or self.pixel_mm is None:
            raise ValueError("series geometry is incomplete; check in_mm first")
        row_mm, column_mm = self.pixel_mm
        xy = np.asarray(points, dtype=np.float64).reshape(-1, 2) - 0.5
        return (np.asarray(self.origins[index])
                + np.outer(xy[:, 0] * column_mm, self.row_direction)
                + np.outer(xy[:, 1] * row_mm, self.column_direction))

    def plane_box(self, index: int, xyxy: Sequence[float]) -> tuple[float, float, float, float]:
        """A box of slice ``index`` in the series' plane coordinates: (u1, v1, u2, v2) mm
        along the row and column directions, so that boxes of different slices compare
        even when their origins differ.

        Raises:
            ValueError: the series cannot be placed in mm.
        """
        corners = self.patient_points(index, np.array([xyxy[:2], xyxy[2:4]], dtype=float))
        u = corners @ np.asarray(self.row_direction)
        v = corners @ np.asarray(self.column_direction)
        return (float(u.min()), float(v.min()), float(u.max()), float(v.max()))


def _finite(values: Sequence[float] | None) -> bool:
    return values is not None and all(math.isfinite(v) and abs(v) <= _LIMIT_MM
                                      for v in values)


def _same(values: Sequence[Sequence[float]]) -> bool:
    first = np.asarray(values[0], dtype=float)
    return all(np.allclose(np.asarray(v, dtype=float), first, atol=_SAME) for v in values[1:])


def series_spacing(positions: Sequence[float]) -> float | None:
    """The median gap between distinct positions (mm); 1.0 for one distinct position,
    None for no position. Distinct: more than 1e-3 mm apart (series of several
    acquisitions repeat each position)."""
    if not positions:
        return None
    ordered = np.unique(np.round(np.asarray(positions, dtype=float), 3))
    gaps = np.diff(ordered)
    return float(np.median(gaps)) if len(gaps) else 1.0


def series_geometry(headers: Sequence[SliceHeader]) -> SeriesGeometry:
    """The geometry of ``headers`` (one series, in the order they are given)."""
    orientations = [h.orientation for h in headers]
    if not headers or not all(_finite(o) for o in orientations) or not _same(
            [o for o in orientations if o is not None]):
        oriented = None
    else:
        oriented = orientations[0]
    spacings = [h.pixel_spacing for h in headers]
    pixel_mm = None
    if headers and all(_finite(s) and min(s) > 0 for s in spacings if s is not None) \
            and all(s is not None for s in spacings) \
            and _same([s for s in spacings if s is not None]):
        first = spacings[0]
        pixel_mm = (float(first[0]), float(first[1])) if first is not None else None
    origins = [h.position for h in headers]
    if oriented is None or not all(_finite(p) for p in origins):
        return SeriesGeometry(None, None, pixel_mm, None)
    row = (float(oriented[0]), float(oriented[1]), float(oriented[2]))
    column = (float(oriented[3]), float(oriented[4]), float(oriented[5]))
    normal = np.asarray(slice_normal(oriented))
    placed = tuple((float(p[0]), float(p[1]), float(p[2])) for p in origins if p is not None)
    positions = tuple(float(np.dot(normal, p)) for p in placed)
    return SeriesGeometry(positions, series_spacing(positions), pixel_mm, placed, row, column)
