"""The order of a series' slices along the patient axis, from geometry (never names).

Identity comes from UIDs and order from ImagePositionPatient projected on the normal of
ImageOrientationPatient (InstanceNumber when the geometry is missing or implausible;
:mod:`detect.io.dicom_values` says what is plausible).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from detect.io.dicom import SliceHeader
from detect.io.dicom_values import orientation_ok, position_ok


def slice_normal(
    orientation: Sequence[float] | None,
) -> tuple[float, float, float]:
    """The normal of the image plane from ImageOrientationPatient (axial if missing)."""
    if orientation is None:
        return (0.0, 0.0, 1.0)
    row = np.asarray(orientation[:3], dtype=np.float64)
    col = np.asarray(orientation[3:], dtype=np.float64)
    normal = np.cross(row, col)
    norm = float(np.linalg.norm(normal))
    if norm == 0.0:
        return (0.0, 0.0, 1.0)
    n = normal / norm
    return (float(n[0]), float(n[1]), float(n[2]))


def sort_slices(headers: Iterable[SliceHeader]) -> list[SliceHeader]:
    """Order the slices of one series along the patient axis (by geometry, not name).

    Slices with a position are ordered by its projection on the slice normal; when any
    slice lacks a plausible position (absent, NaN, metres away), InstanceNumber orders
    them; SOPInstanceUID breaks ties so the order is deterministic. The normal comes from
    the first plausible ImageOrientationPatient in SOPInstanceUID order, so one slice with
    a NaN or skewed orientation (refused itself as ``implausible-value``) cannot reorder
    the others.
    """
    items = sorted(headers, key=lambda h: h.sop_instance_uid)
    if not items:
        return []
    orientation = next((h.orientation for h in items if orientation_ok(h.orientation)), None)
    normal = np.asarray(slice_normal(orientation))
    if all(position_ok(h.position) for h in items):
        return sorted(
            items,
            key=lambda h: (float(np.dot(normal, h.position)), h.sop_instance_uid),  # type: ignore[arg-type]
        )
    return sorted(
        items,
        key=lambda h: (
            h.instance_number if h.instance_number is not None else 0,
            h.sop_instance_uid,
        ),
    )
