"""What the phantom's annotator sees and writes: lesion hits per image, VOC XML files.

Rule: a lesion is annotated on every image of a series where its cross-section has at
least ``max(MIN_AREA_PX, END_CAP_FRACTION × its largest cross-section in that series)``
pixels (tiny end caps are skipped, as annotators do). The box is the tight box of the
lesion on that image, each edge moved by -1, 0 or +1 px (annotator jitter), clipped to
the image. One XML per annotated image, named ``<SOPInstanceUID>.xml``, one object per
lesion on it, named with the patient's histology letter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detect.boxes import XYXY, xyxy_to_voc
from detect.io.voc import VocObject, voc_xml_bytes
from detect.synth.phantom.lesions import LesionSection

END_CAP_FRACTION = 0.2
MIN_AREA_PX = 2


@dataclass(frozen=True)
class Hit:
    """A lesion on one image: tight box (pixel-edge xyxy px), area and solid area (px)."""

    lesion: int
    box: XYXY
    area_px: int
    solid_area_px: int

    @classmethod
    def of(cls, section: LesionSection) -> Hit:
        """The hit of a (non-empty) section on the CT grid."""
        return cls(section.index, section.box_xyxy(), section.area_px, section.solid_area_px)

    @classmethod
    def from_mask(
        cls, lesion: int, mask: np.ndarray, solid: np.ndarray, row0: int, col0: int
    ) -> Hit | None:
        """The hit of a mask whose top-left pixel is (``row0``, ``col0``); None if empty."""
        rows = np.nonzero(mask.any(axis=1))[0]
        cols = np.nonzero(mask.any(axis=0))[0]
        if len(rows) == 0:
            return None
        box = (
            float(col0 + cols[0]),
            float(row0 + rows[0]),
            float(col0 + cols[-1] + 1),
            float(row0 + rows[-1] + 1),
        )
        return cls(lesion, box, int(mask.sum()), int(solid.sum()))


@dataclass(frozen=True)
class ScreenshotView:
    """How a fused screenshot sees the CT grid: zoomed out and shifted (nearest pixel).

    ``rows[i]`` / ``cols[j]`` are the CT pixel shown at screenshot row i / column j;
    where ``valid_*`` is False the screenshot is black.
    """

    rows: np.ndarray
    cols: np.ndarray
    valid_rows: np.ndarray
    valid_cols: np.ndarray

    @classmethod
    def random(cls, rng: np.random.Generator, size: int) -> ScreenshotView:
        """Zoom 0.86-0.95, shift up to 3% of the size on each axis."""
        zoom = float(rng.uniform(0.86, 0.95))
        shift = rng.uniform(-0.03, 0.03, 2) * size
        centre = (size - 1) / 2.0
        axes = []
        for offset in shift:
            source = np.rint(centre + (np.arange(size) - centre - offset) / zoom).astype(np.int64)
            axes.append((np.clip(source, 0, size - 1), (source >= 0) & (source < size)))
        (rows, valid_rows), (cols, valid_cols) = axes
        return cls(rows, cols, valid_rows, valid_cols)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The screenshot of a CT-grid image (H × W or H × W × C)."""
        out = np.take(np.take(image, self.rows, axis=0), self.cols, axis=1)
        out[~self.valid_rows] = 0
        out[:, ~self.valid_cols] = 0
        return np.ascontiguousarray(out)

    def hit(self, section: LesionSection) -> Hit | None:
        """The section as seen on the screenshot (None if it falls outside)."""
        r0, c0 = section.rows.start, section.cols.start
        in_rows = self.valid_rows & (self.rows >= r0) & (self.rows < section.rows.stop)
        in_cols = self.valid_cols & (self.cols >= c0) & (self.cols < section.cols.stop)
        r_sel, c_sel = np.nonzero(in_rows)[0], np.nonzero(in_cols)[0]
        if len(r_sel) == 0 or len(c_sel) == 0:
            return None
        pick_r, pick_c = self.rows[r_sel] - r0, self.cols[c_sel] - c0
        mask = section.mask[pick_r][:, pick_c]
        solid = section.solid[pick_r][:, pick_c]
        return Hit.from_mask(section.index, mask, solid, int(r_sel[0]), int(c_sel[0]))


def annotated(hits: Mapping[int, list[Hit]]) -> dict[int, list[Hit]]:
    """The hits an annotator boxes, by image index (see the module's rule)."""
    largest: dict[int, int] = {}
    for image_hits in hits.values():
        for hit in image_hits:
            largest[hit.lesion] = max(largest.get(hit.lesion, 0), hit.area_px)
    result: dict[int, list[Hit]] = {}
    for index in sorted(hits):
        kept = [
            h
            for h in hits[index]
            if h.area_px >= max(MIN_AREA_PX, END_CAP_FRACTION * largest[h.lesion])
        ]
        if kept:
            result[index] = kept
    return result


def jitter(box: XYXY, rng: np.random.Generator, width: int, height: int) -> XYXY:
    """Move each edge by -1, 0 or +1 px, keep it inside the image and non-empty."""
    dx0, dy0, dx1, dy1 = (int(v) for v in rng.integers(-1, 2, 4))
    x0 = min(max(box[0] + dx0, 0.0), width - 1.0)
    y0 = min(max(box[1] + dy0, 0.0), height - 1.0)
    x1 = min(max(box[2] + dx1, x0 + 1.0), float(width))
    y1 = min(max(box[3] + dy1, y0 + 1.0), float(height))
    return (x0, y0, x1, y1)


def write_xml(
    path: Path,
    letter: str,
    hits: list[Hit],
    rng: np.random.Generator,
    size: tuple[int, int, int],
) -> list[dict[str, Any]]:
    """Write one VOC file for ``hits`` (``size`` = width, height, depth); returns its objects."""
    width, height, depth = size
    boxes = [jitter(hit.box, rng, width, height) for hit in hits]
    objects = [VocObject(name=letter, xyxy=box) for box in boxes]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(voc_xml_bytes(objects, width, height, depth))
    return [
        {
            "lesion": hit.lesion,
            "box_exact_xyxy": list(hit.box),
            "box_voc": list(xyxy_to_voc(box)),
            "area_px": hit.area_px,
            "solid_area_px": hit.solid_area_px,
        }
        for hit, box in zip(hits, boxes)
    ]
