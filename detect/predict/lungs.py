"""The lung field in ``detect predict``: planned per series before any slice is rendered,
built once the series' last slice is in, and applied to the series' boxes.

Each slice's air inside the body is computed where the slice is decoded (the render
workers, :func:`detect.lung.field.air_inside_body`), so HU volumes are never held;
:class:`SeriesCollector` keeps a series' slice results, those small masks and (for
``--save png``) the grey images of slices with findings until the series is complete;
then :func:`apply_field` builds the field (:func:`detect.lung.field.build_lung_field`)
and drops every box that does not overlap it, counting it on its slice
(``SliceResult.outside_lung``: slices.csv's and summary.csv's ``outside_lung``).

A series' ``lung_field`` status (summary.csv): ``on``; ``off`` (``--lung-field off``); or
``unavailable: <why>`` (no PixelSpacing, slices of different sizes, no slice readable):
then every box is kept, as with ``off``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from detect.io.geometry import SeriesGeometry, series_geometry
from detect.lung import (
    LungFieldRule,
    LungFieldUnavailable,
    block_size,
    build_lung_field,
    pixel_size,
)
from detect.predict.sources import Series
from detect.predict.writers import SliceResult

ON, OFF = "on", "off"


@dataclass(frozen=True)
class FieldPlan:
    """A series' geometry, the block size its slices' air masks use (0: none), and the
    field's status so far."""

    geometry: SeriesGeometry
    block: int
    status: str


def plan_field(series: Series, rule: LungFieldRule | None) -> FieldPlan:
    """What the render jobs of ``series`` compute for the field (module docstring)."""
    geometry = series_geometry(series.slices)
    if rule is None:
        return FieldPlan(geometry, 0, OFF)
    try:
        return FieldPlan(geometry, block_size(pixel_size(geometry.pixel_mm), rule.grid_mm), ON)
    except LungFieldUnavailable as exc:
        return FieldPlan(geometry, 0, f"unavailable: {exc}")


@dataclass
class PendingSeries:
    """What has come in of one series."""

    series: Series
    plan: FieldPlan
    results: list[SliceResult] = field(default_factory=list)
    air: dict[int, np.ndarray] = field(default_factory=dict)
    grey: dict[int, np.ndarray] = field(default_factory=dict)
    received: int = 0

    @property
    def complete(self) -> bool:
        return self.received >= len(self.series.slices)


class SeriesCollector:
    """Keeps each series' slices until its last one is in (slices come in series order,
    but a batch may hold the end of one series and the start of the next)."""

    def __init__(self, plans: dict[str, FieldPlan]) -> None:
        self.plans = plans
        self.pending: dict[str, PendingSeries] = {}

    def _entry(self, series: Series) -> PendingSeries:
        if series.uid not in self.pending:
            self.pending[series.uid] = PendingSeries(series, self.plans[series.uid])
        return self.pending[series.uid]

    def add(self, series: Series, result: SliceResult, air: np.ndarray | None,
            grey: np.ndarray | None) -> PendingSeries | None:
        """One predicted slice (its position along the series axis is set here); the
        series when it is now complete (and no longer kept)."""
        entry = self._entry(series)
        positions = entry.plan.geometry.positions_mm
        if positions is not None:
            result.position_mm = positions[result.slice_index]
        entry.results.append(result)
        if air is not None:
            entry.air[result.slice_index] = air
        if grey is not None and result.predictions:
            entry.grey[result.slice_index] = grey
        return self._count(entry)

    def failed(self, series: Series) -> PendingSeries | None:
        """A slice whose pixels could not be read; the series when now complete."""
        return self._count(self._entry(series))

    def _count(self, entry: PendingSeries) -> PendingSeries | None:
        entry.received += 1
        return self.pending.pop(entry.series.uid) if entry.complete else None

    def rest(self) -> list[PendingSeries]:
        """Whatever is still kept (nothing, when every slice came in), in arrival order."""
        rest = list(self.pending.values())
        self.pending.clear()
        return rest


def apply_field(entry: PendingSeries, rule: LungFieldRule | None) -> str:
    """Build the series' field and drop the boxes outside it (module docstring); returns
    the series' ``lung_field`` status."""
    plan = entry.plan
    if rule is None or plan.block == 0 or not any(r.predictions for r in entry.results):
        return plan.status
    try:
        lung_field = build_lung_field(
            _in_order(entry), pixel_mm=pixel_size(plan.geometry.pixel_mm), block=plan.block,
            positions_mm=plan.geometry.positions_mm, rule=rule)
    except LungFieldUnavailable as exc:
        return f"unavailable: {exc}"
    for result in entry.results:
        kept = [p for p in result.predictions
                if lung_field.keeps(result.slice_index, p.xyxy, rule.min_overlap)]
        result.outside_lung += len(result.predictions) - len(kept)
        result.predictions = kept
    return ON


def _in_order(entry: PendingSeries) -> Sequence[np.ndarray | None]:
    return [entry.air.get(i) for i in range(len(entry.series.slices))]
