"""Where ``--negatives`` come from: any slice of an annotated series away from its boxes
(``--negatives-from series``, the default and the earlier behaviour), or only slices
that show the lungs (``--negatives-from lungs``).

``lungs``: each annotated series' lung field is worked out as ``detect predict`` does
(:mod:`detect.lung`: every slice decoded once, reduced to air inside the body on ~3 mm
blocks, then the 3D pass); a slice is a candidate when its lungs (the kept air
components, holes filled) cover at least ``min_lung_fraction`` of the series' largest
lung cross-section. Negatives then teach the model what the lungs look like without a
tumour, rather than the neck or the abdomen, which a lung field removes at prediction
anyway. A series without a field (no PixelSpacing, no air inside the body, no slice
decodable) falls back to the ``series`` rule, and the dataset's ``negatives_rule``
lists it.

Series are worked out in worker processes, one series per task.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detect.convert.config import NEGATIVE_SOURCES
from detect.errors import DicomError
from detect.io.dicom import SliceHeader, read_hu
from detect.io.geometry import series_geometry
from detect.lung import (
    LungFieldRule,
    LungFieldUnavailable,
    air_inside_body,
    block_size,
    build_lung_field,
    pixel_size,
)

log = logging.getLogger(__name__)

__all__ = ["NEGATIVE_SOURCES", "LungSlices", "lung_slices", "negatives_rule"]

RULE_NAME = "negatives-in-lungs"
#: A negative shows at least this fraction of the series' largest lung cross-section.
MIN_LUNG_FRACTION = 0.25


def negatives_rule(source: str) -> dict[str, Any]:
    """The rule ``--negatives-from`` names, as dataset.json records it."""
    if source == "series":
        return {"rule": "away-from-boxes", "version": 1}
    return {"rule": RULE_NAME, "version": 1, "min_lung_fraction": MIN_LUNG_FRACTION,
            "lung_field": LungFieldRule().to_dict()}


@dataclass(frozen=True)
class _SeriesJob:
    uid: str
    paths: tuple[str, ...]
    pixel_spacing: tuple[float, float] | None
    positions: tuple[float, ...] | None
    max_pixels: int


def _lung_slices(job: _SeriesJob) -> tuple[str, frozenset[int] | None, str]:
    """(series, the indices of its slices that show the lungs or None, why None)."""
    rule = LungFieldRule()
    try:
        pixel_mm = pixel_size(job.pixel_spacing)
        block = block_size(pixel_mm, rule.grid_mm)
        air: list[np.ndarray | None] = []
        for path in job.paths:
            try:
                air.append(air_inside_body(read_hu(Path(path), max_pixels=job.max_pixels),
                                           air_hu=rule.air_hu, block=block))
            except DicomError:
                air.append(None)
        field = build_lung_field(air, pixel_mm=pixel_mm, block=block,
                                 positions_mm=job.positions, rule=rule)
    except LungFieldUnavailable as exc:
        return job.uid, None, str(exc)
    largest = float(field.lung_mm2.max())
    return job.uid, frozenset(
        int(i) for i in np.nonzero(field.lung_mm2 >= MIN_LUNG_FRACTION * largest)[0]), ""


def _jobs(series: Mapping[str, Sequence[SliceHeader]], max_pixels: int
          ) -> list[_SeriesJob]:
    jobs = []
    for uid, headers in sorted(series.items()):
        geometry = series_geometry(headers)
        jobs.append(_SeriesJob(uid, tuple(str(h.path) for h in headers), geometry.pixel_mm,
                               geometry.positions_mm, max_pixels))
    return jobs


def _map(jobs: list[_SeriesJob], workers: int
         ) -> Iterator[tuple[str, frozenset[int] | None, str]]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_lung_slices, jobs)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        yield from pool.map(_lung_slices, jobs)


@dataclass(frozen=True)
class LungSlices:
    """Per series UID, the indices (in the series' sorted order) of the slices that show
    the lungs; ``unavailable``: series without a field (UID → why), which keep every
    slice."""

    by_series: dict[str, frozenset[int]]
    unavailable: dict[str, str]

    def allows(self, series_uid: str, index: int) -> bool:
        """May slice ``index`` of the series be a negative."""
        chosen = self.by_series.get(series_uid)
        return chosen is None or index in chosen


def lung_slices(series: Mapping[str, Sequence[SliceHeader]], *, workers: int,
                max_pixels: int) -> LungSlices:
    """The slices of each of ``series`` (UID → its headers in sorted order) that show the
    lungs (module docstring)."""
    by_series: dict[str, frozenset[int]] = {}
    unavailable: dict[str, str] = {}
    for uid, chosen, why in _map(_jobs(series, max_pixels), workers):
        if chosen is None:
            unavailable[uid] = why
            log.warning("series %s: no lung field (%s); its negatives may be any slice",
                        uid, why)
        else:
            by_series[uid] = chosen
    return LungSlices(by_series, unavailable)
