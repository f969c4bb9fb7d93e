"""The order of a series' slices along the patient axis, from geometry (never names).

Identity comes from UIDs and order from ImagePositionPatient projected on the normal of
ImageOrientationPatient (InstanceNumber when the geometry is missing or implausible;
:mod:`detect.io.dicom_values` says what is plausible).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Stacking:
    """Which slices a 2.5d image stacks (:func:`neighbour_indices`): ``offsets`` in steps
    along the axis, a step being one distinct position or, with ``step_mm``, the position
    nearest to that many mm. ``(0,)``: the slice alone."""

    offsets: tuple[int, ...] = (0,)
    step_mm: float | None = None

    @property
    def single(self) -> bool:
        return set(self.offsets) == {0}


def _stacks(slices: Sequence[SliceHeader], keys: Sequence[float]) -> list[list[int]]:
    """The series' slices as stacks of one acquisition each, when the series repeats
    positions and AcquisitionNumber splits it into as many stacks as one position holds
    slices, none repeating a position; else the series is one stack (some scanners number
    every slice, or every few, as an acquisition of its own)."""
    repeats = Counter(keys)
    if len(repeats) == len(keys):
        return [list(range(len(slices)))]
    groups: dict[int | None, list[int]] = {}
    for i, header in enumerate(slices):
        groups.setdefault(header.acquisition_number, []).append(i)
    if len(groups) == max(repeats.values()) and all(
            len({keys[i] for i in group}) == len(group) for group in groups.values()):
        return list(groups.values())
    return [list(range(len(slices)))]


def neighbour_indices(
    slices: Sequence[SliceHeader], offsets: Sequence[int], step_mm: float | None = None
) -> list[tuple[int, ...]]:
    """For each slice of a series in :func:`sort_slices` order, the index of its neighbour
    at each offset: ``k`` steps along the axis, in the slice's own acquisition, clamped at
    the stack's ends (edge-replicated). A step is the next *distinct position*; with
    ``step_mm``, the distinct position nearest to ``k * step_mm`` mm away (at least one
    position; the nearer one on a tie), so that a thin-slice series stacks the same
    thickness of anatomy as the 5 mm series a model was trained on.

    Why not ``i + k``: a series can hold several acquisitions of the same positions
    (Lung-PET-CT-Dx's GE contrast phases: three images at every position, AcquisitionNumber
    1-3), and sorted by position their slices interleave, so ``i ± 1`` is the same place at
    another time instead of the next slice. Stacks come from AcquisitionNumber when it
    separates the repeats; otherwise the slices at one position are ranked
    (AcquisitionNumber, InstanceNumber, SOPInstanceUID) and a neighbour is taken at the
    same rank. Without plausible positions every slice is its own position (``i + k``,
    ``step_mm`` unused).
    """
    if not slices:
        return []
    located = all(position_ok(h.position) for h in slices)
    if located:
        orientation = next((h.orientation for h in sorted(slices, key=lambda h: h.sop_instance_uid)
                            if orientation_ok(h.orientation)), None)
        normal = np.asarray(slice_normal(orientation))
        keys = [round(float(np.dot(normal, h.position)), 3) for h in slices]  # type: ignore[arg-type]
    else:
        keys = [float(i) for i in range(len(slices))]
    found: list[tuple[int, ...]] = [() for _ in slices]
    for stack in _stacks(slices, keys):
        levels = sorted({keys[i] for i in stack})
        level_of = {key: n for n, key in enumerate(levels)}
        at_level: list[list[int]] = [[] for _ in levels]
        for i in stack:
            at_level[level_of[keys[i]]].append(i)
        for members in at_level:
            members.sort(key=lambda i: (
                slices[i].acquisition_number if slices[i].acquisition_number is not None else 0,
                slices[i].instance_number if slices[i].instance_number is not None else 0,
                slices[i].sop_instance_uid))
        for level, members in enumerate(at_level):
            targets = [_target_level(levels, level, offset, step_mm if located else None)
                       for offset in offsets]
            for rank, i in enumerate(members):
                found[i] = tuple(
                    i if target == level else at_level[target][min(rank, len(at_level[target]) - 1)]
                    for target in targets)
    return found


def _target_level(levels: Sequence[float], level: int, offset: int,
                  step_mm: float | None) -> int:
    """The level ``offset`` steps from ``level`` (:func:`neighbour_indices`), clamped."""
    last = len(levels) - 1
    if offset == 0:
        return level
    if step_mm is None:
        return min(max(level + offset, 0), last)
    want = levels[level] + offset * step_mm
    low, high = (level + 1, last) if offset > 0 else (0, level - 1)  # at least one step
    if low > high:
        return level
    j = bisect.bisect_left(levels, want, low, high + 1)
    candidates = [m for m in (j - 1, j) if low <= m <= high]
    # nearest to `want`; on a tie the one closer to the slice
    return min(candidates, key=lambda m: (abs(levels[m] - want), abs(m - level)))
