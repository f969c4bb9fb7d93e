"""Slice boxes of one CT series → 3D lesion candidates, in patient coordinates.

Each box is placed by its slice: its position along the series axis (mm, from
ImagePositionPatient; the slice index when the series has no geometry) and its corners
in the series' plane (mm along the row and column directions; px without geometry), see
:class:`detect.io.geometry.SeriesGeometry`. Two boxes of different slices are linked when
their positions are at most ``max_gap + 1`` slice spacings apart and their in-plane IoU
is at least ``iou``; a lesion is a connected group of linked boxes (union-find, so the
result does not depend on the order of the boxes). Slices at one position (a series of
several acquisitions) link like neighbours.

A lesion's measurements (None when the geometry does not give them):

- ``score``: the highest of its boxes' scores (why: :class:`~detect.lesions.rule.LinkRule`);
- ``box_mm``: its 3D box in patient coordinates (LPS mm: x1, y1, z1, x2, y2, z2), the
  corners of its boxes, grown by half a slice spacing along the slice normal;
- ``diameter_mm``: the longest axial diameter, as the longer side of its largest box
  (in mm, in the slice plane): what a box says of the tumour's longest diameter (the true
  one lies between it and the box's diagonal);
- ``extent_mm``: the craniocaudal extent, from the first to the last slice position plus
  one slice spacing (each slice stands for one spacing of tissue).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detect.boxes import XYXY, box_iou
from detect.io.geometry import SeriesGeometry
from detect.lesions.rule import LinkRule

Box6 = tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class SliceBox:
    """One box to link: its slice (``slice_key``, unique per slice, e.g. the SOP
    Instance UID; ``slice_index``, the slice's place in its series), xyxy px, score."""

    slice_key: str
    slice_index: int
    xyxy: XYXY
    score: float


@dataclass(frozen=True)
class Lesion:
    """A 3D lesion candidate: its boxes (by slice index, then descending score), their
    places in the linker's input (``indices``, in the same order) and measurements
    (module docstring)."""

    boxes: tuple[SliceBox, ...]
    indices: tuple[int, ...]
    score: float
    box_mm: Box6 | None
    diameter_mm: float | None
    extent_mm: float | None

    @property
    def slice_indices(self) -> tuple[int, ...]:
        """The distinct slice indices it lies on, ascending."""
        return tuple(sorted({b.slice_index for b in self.boxes}))

    @property
    def lone(self) -> bool:
        """A single box on a single slice."""
        return len(self.boxes) == 1


@dataclass(frozen=True)
class LinkedSeries:
    """The lesions of one series by descending score, and those the lone rule dropped."""

    lesions: tuple[Lesion, ...]
    dropped: tuple[Lesion, ...]
    linked_in: str  # "mm" (positions and plane in mm) or "slice-index" (no geometry)


class Groups:
    """Union-find over box indices (the root of a group is its smallest index)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> tuple[int, int] | None:
        """Join the groups of a and b; (kept root, absorbed root), or None if one group."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        self.parent[max(ra, rb)] = min(ra, rb)
        return min(ra, rb), max(ra, rb)


def _placed(boxes: Sequence[SliceBox], geometry: SeriesGeometry | None
            ) -> tuple[np.ndarray, np.ndarray, float]:
    """Positions along the axis, in-plane boxes, and the slice spacing in those units."""
    if geometry is not None and geometry.positions_mm is not None:
        positions = np.array([geometry.positions_mm[b.slice_index] for b in boxes])
        unit = geometry.spacing_mm or 1.0
    else:
        positions = np.array([float(b.slice_index) for b in boxes])
        unit = 1.0
    if geometry is not None and geometry.in_mm:
        plane = np.array([geometry.plane_box(b.slice_index, b.xyxy) for b in boxes])
    else:
        plane = np.array([b.xyxy for b in boxes], dtype=float)
    return positions, plane.reshape(-1, 4), unit


def link_edges(boxes: Sequence[SliceBox], geometry: SeriesGeometry | None,
               rule: LinkRule) -> list[tuple[int, int]]:
    """Every pair (i, j), i < j, of boxes that link (module docstring), sorted."""
    if not boxes:
        return []
    positions, plane, unit = _placed(boxes, geometry)
    reach = (rule.max_gap + 1) * unit * (1.0 + 1e-6)
    order = np.argsort(positions, kind="stable")
    keys = [b.slice_key for b in boxes]
    edges = []
    for k, i in enumerate(order):
        j_end = k + 1
        while j_end < len(order) and positions[order[j_end]] - positions[i] <= reach:
            j_end += 1
        near = [int(j) for j in order[k + 1 : j_end] if keys[j] != keys[i]]
        if not near:
            continue
        overlap = box_iou(plane[[i]], plane[near])[0]
        edges += [(min(int(i), j), max(int(i), j)) for j, value in zip(near, overlap)
                  if value >= rule.iou]
    return sorted(edges)


def link_groups(boxes: Sequence[SliceBox], geometry: SeriesGeometry | None,
                rule: LinkRule) -> list[list[int]]:
    """The groups of linked box indices (module docstring), each ascending, ordered by
    their first index."""
    groups = Groups(len(boxes))
    for i, j in link_edges(boxes, geometry, rule):
        groups.union(i, j)
    members: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        members.setdefault(groups.find(i), []).append(i)
    return sorted(members.values(), key=lambda m: m[0])


def _measure(members: Sequence[SliceBox], geometry: SeriesGeometry | None
             ) -> tuple[Box6 | None, float | None, float | None]:
    if geometry is None:
        return None, None, None
    extent = None
    if geometry.positions_mm is not None and geometry.spacing_mm is not None:
        where = [geometry.positions_mm[b.slice_index] for b in members]
        extent = float(max(where) - min(where) + geometry.spacing_mm)
    if not geometry.in_mm:
        return None, None, extent
    diameter = max(max(u2 - u1, v2 - v1) for u1, v1, u2, v2 in
                   (geometry.plane_box(b.slice_index, b.xyxy) for b in members))
    corners = np.vstack([
        geometry.patient_points(b.slice_index, np.array(
            [[b.xyxy[0], b.xyxy[1]], [b.xyxy[2], b.xyxy[1]],
             [b.xyxy[2], b.xyxy[3]], [b.xyxy[0], b.xyxy[3]]]))
        for b in members])
    half = 0.5 * (geometry.spacing_mm or 0.0) * np.abs(np.asarray(geometry.normal))
    low, high = corners.min(axis=0) - half, corners.max(axis=0) + half
    box = (float(low[0]), float(low[1]), float(low[2]),
           float(high[0]), float(high[1]), float(high[2]))
    return box, float(diameter), extent


def _lesion(boxes: Sequence[SliceBox], group: Sequence[int],
            geometry: SeriesGeometry | None) -> Lesion:
    order = sorted(group, key=lambda i: (boxes[i].slice_index, -boxes[i].score,
                                         boxes[i].xyxy, i))
    ordered = tuple(boxes[i] for i in order)
    box_mm, diameter, extent = _measure(ordered, geometry)
    return Lesion(ordered, tuple(order), max(b.score for b in ordered), box_mm, diameter,
                  extent)


def _rank(lesion: Lesion) -> tuple[float, int, XYXY]:
    first = lesion.boxes[0]
    return (-lesion.score, first.slice_index, first.xyxy)


def link_series(boxes: Sequence[SliceBox], geometry: SeriesGeometry | None,
                rule: LinkRule) -> LinkedSeries:
    """Link the boxes of one series into lesions (module docstring) and apply the lone
    rule (``rule.lone_min_score``)."""
    lesions = [_lesion(boxes, group, geometry)
               for group in link_groups(boxes, geometry, rule)]
    lesions.sort(key=_rank)
    kept = tuple(x for x in lesions if not (x.lone and x.score < rule.lone_min_score))
    dropped = tuple(x for x in lesions if x.lone and x.score < rule.lone_min_score)
    in_mm = geometry is not None and geometry.positions_mm is not None
    return LinkedSeries(kept, dropped, "mm" if in_mm else "slice-index")
