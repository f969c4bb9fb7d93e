"""The lung field of one CT series, from HU alone: per-slice 2D work plus one 3D pass.

Memory: a 1000-slice series of 512² float32 HU is 1 GB, so the volume is never held.
Each slice is reduced where it is decoded (:func:`air_inside_body`, in predict's worker
processes) to a boolean mask on blocks of ``block`` × ``block`` pixels (about
``grid_mm`` wide: 128² or 170² cells for 512² slices, 16-29 kB); the 3D pass
(:func:`build_lung_field`) stacks these (16-29 MB for 1000 slices, plus its int32 labels,
4 bytes a cell) and returns the field on the same cells.

Per slice (2D): air is HU < ``air_hu``; blocks are air when at least half their pixels
are; air connected to the image border (outside the body, the table, the padding
outside the reconstruction circle) is removed, leaving air inside the body: lungs,
airways, stomach and bowel gas.

3D pass: connected components of that air through the series (6-connected); the
largest is kept, and the second when it holds at least ``second_lung_fraction`` of the
largest's cells (two lungs, or one component when the airways join them); then, per
slice, holes are filled (tumours, vessels), the lungs are closed with a disk of
``close_mm`` and dilated by ``dilate_mm``; last, each slice takes the union of the
slices within ``dilate_z_mm`` along the series axis (by position in mm; by one slice
when the series has no positions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detect.errors import DetectError
from detect.lung.morphology import block_counts, close, dilate, ellipse, fill_holes, label
from detect.lung.rule import LungFieldRule


class LungFieldUnavailable(DetectError):
    """The series gives no lung field (no slice read, slices of different sizes, no pixel
    spacing, no air inside the body anywhere); the caller keeps every box and reports
    why."""


def pixel_size(pixel_spacing: Sequence[float] | None) -> float:
    """One number for a pixel's size (mm): the mean of PixelSpacing's row and column
    spacing (CT pixels are square; the mean is within half a step of either).

    Raises:
        LungFieldUnavailable: no PixelSpacing, or not two positive finite numbers.
    """
    if pixel_spacing is None or len(pixel_spacing) != 2 or not all(
            math.isfinite(v) and v > 0 for v in pixel_spacing):
        raise LungFieldUnavailable(f"the series has no usable PixelSpacing "
                                   f"({pixel_spacing!r})")
    return float(sum(pixel_spacing)) / 2.0


def block_size(pixel_mm: float, grid_mm: float) -> int:
    """Whole pixels per block side: ``grid_mm // pixel_mm``, at least 1."""
    return max(1, int(grid_mm // pixel_mm))


def air_inside_body(hu: np.ndarray, *, air_hu: float, block: int) -> np.ndarray:
    """One slice's air inside the body on blocks of ``block`` pixels (bool, rows // block
    × columns // block; the last partial row and column of blocks are left out)."""
    rows, columns = (hu.shape[0] // block) * block, (hu.shape[1] // block) * block
    if rows == 0 or columns == 0:
        return np.zeros((max(rows // block, 0), max(columns // block, 0)), dtype=bool)
    air = np.ascontiguousarray(hu[:rows, :columns]) < air_hu
    if block > 1:  # a block is air when at least half its pixels are
        air = block_counts(air, block) * 2 >= block * block
    labels, _ = label(air)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return air & ~np.isin(labels, edge[edge > 0])


@dataclass(frozen=True)
class LungField:
    """The field of a series on blocks: ``mask[i]`` is slice i's field (bool cells of
    ``block`` × ``block`` pixels), ``lung_mm2[i]`` the area of slice i's lungs (the kept
    components, holes filled, before closing and dilation) in mm²."""

    mask: np.ndarray
    lung_mm2: np.ndarray
    block: int

    def box_fraction(self, index: int, xyxy: Sequence[float]) -> float:
        """The fraction of the box's cells (xyxy px of slice ``index``, every cell it
        touches) that lie in the field; 0.0 for a box off the grid."""
        plane = self.mask[index]
        x1, y1, x2, y2 = (float(v) / self.block for v in xyxy)
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            return 0.0
        c1, r1 = max(0, math.floor(x1)), max(0, math.floor(y1))
        c2 = min(plane.shape[1], max(c1 + 1, math.ceil(x2)))
        r2 = min(plane.shape[0], max(r1 + 1, math.ceil(y2)))
        cells = plane[r1:r2, c1:c2]
        return float(cells.mean()) if cells.size else 0.0

    def keeps(self, index: int, xyxy: Sequence[float], min_overlap: float) -> bool:
        """Is more than ``min_overlap`` of the box in the field (0: any overlap)."""
        return self.box_fraction(index, xyxy) > min_overlap


def _stack(air: Sequence[np.ndarray | None]) -> np.ndarray:
    """The slices' masks as one volume; a slice without one (its pixels failed) is empty."""
    shapes = {a.shape for a in air if a is not None}
    if not shapes:
        raise LungFieldUnavailable("no slice of the series could be read")
    if len(shapes) > 1:
        raise LungFieldUnavailable(f"slices of different sizes in one series "
                                   f"({len(shapes)} sizes)")
    (shape,) = shapes
    volume = np.zeros((len(air), *shape), dtype=bool)
    for i, plane in enumerate(air):
        if plane is not None:
            volume[i] = plane
    return volume


def _lungs(volume: np.ndarray, second_fraction: float) -> np.ndarray:
    """The largest 3D component, and the second when large enough (module docstring)."""
    labels, count = label(volume)
    if count == 0:
        return np.zeros(volume.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(-sizes, kind="stable")
    kept = np.zeros(count + 1, dtype=bool)  # by label: a lookup, not a search per cell
    kept[int(order[0]) + 1] = True
    if count > 1 and sizes[order[1]] >= second_fraction * sizes[order[0]]:
        kept[int(order[1]) + 1] = True
    return kept[labels]


def _grow_z(planes: np.ndarray, positions: np.ndarray, reach: float) -> np.ndarray:
    """Each slice OR every slice within ``reach`` of its position."""
    if reach <= 0 or len(planes) < 2:
        return planes
    grown = np.empty_like(planes)
    for i, where in enumerate(positions):
        near = np.nonzero(np.abs(positions - where) <= reach + 1e-6)[0]
        grown[i] = planes[near].any(axis=0)
    return grown


def build_lung_field(
    air: Sequence[np.ndarray | None], *, pixel_mm: float, block: int,
    positions_mm: Sequence[float] | None, rule: LungFieldRule,
) -> LungField:
    """The 3D pass (module docstring) over every slice's :func:`air_inside_body`, in
    the series' order; ``pixel_mm``: the pixel spacing (mm); ``positions_mm``: each
    slice's position along the series axis (None: unknown, grown by one slice).

    Raises:
        LungFieldUnavailable: no slice has a mask, or the masks differ in size.
    """
    if positions_mm is not None and len(positions_mm) != len(air):
        raise LungFieldUnavailable(f"{len(positions_mm)} slice positions for {len(air)} "
                                   f"slices")
    volume = _stack(air)
    lungs = _lungs(volume, rule.second_lung_fraction)
    if not lungs.any():
        raise LungFieldUnavailable("no air inside the body on any slice (no lungs found)")
    cell_mm = pixel_mm * block
    closing = ellipse(round(rule.close_mm / cell_mm))
    growing = ellipse(round(rule.dilate_mm / cell_mm))
    field = np.zeros(volume.shape, dtype=bool)
    area = np.zeros(len(volume))
    for i in range(len(volume)):
        if not lungs[i].any():
            continue
        filled = fill_holes(lungs[i])
        area[i] = float(filled.sum()) * cell_mm * cell_mm
        field[i] = dilate(close(filled, closing), growing)
    if positions_mm is None:
        positions, reach = np.arange(len(volume), dtype=float), float(rule.dilate_z_mm > 0)
    else:
        positions, reach = np.asarray(positions_mm, dtype=float), rule.dilate_z_mm
    return LungField(_grow_z(field, positions, reach), area, block)
