"""Phantom chest CT slices in HU, their PET uptake (SUV) and fused PET/CT screenshots.

Geometry and anatomy live in :mod:`detect.synth.phantom.anatomy`, tumours in
:mod:`detect.synth.phantom.lesions`; this module draws them. Each patient's 2D fields (body,
lungs, table) are computed once; a slice scales them by its position ``t`` along the
chest, so the anatomy changes smoothly with z. Everything is vectorised numpy or OpenCV
drawing; no per-pixel Python.

Tissue values (HU): air -1000, subcutaneous fat -100, mediastinal fat -90, muscle and
soft tissue 45, lung -870 (anterior) to -800 (dependent), blood 40 (160 with contrast),
liver 58, bone cortex 700, marrow 250, discs 85, couch shells 150. The slice is blurred
by a 0.45 mm Gaussian (the scanner's resolution) and Gaussian noise of the patient's
``noise_hu`` (10-20 HU) is added last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from detect.synth.phantom.anatomy import Anatomy, Grid, Tissue, bone_layers
from detect.synth.phantom.lesions import Lesion, LesionSection, paint_lesions

BLOOD_HU, CONTRAST_HU = 40.0, 160.0
_SHIFT = 4  # fixed-point bits for OpenCV drawing (1/16 px)
#: SUV by tissue for the PET / fused images (lesions use their own SUV).
_SUV = np.array([0.0, 0.4, 0.8, 0.35, 3.0, 1.6, 1.2, 0.0, 2.2, 0.0, 1.2], dtype=np.float32)


@dataclass
class RenderedSlice:
    """One slice: HU (float32, rows × columns), optional tissue labels, lesion sections.

    ``sections`` holds only lesions with at least one pixel on this slice.
    """

    hu: np.ndarray
    labels: np.ndarray | None
    sections: tuple[LesionSection, ...]


class ChestPhantom:
    """Renders one patient's chest on ``grid``; 2D fields are computed at construction."""

    def __init__(self, anatomy: Anatomy, grid: Grid, vessels: np.ndarray) -> None:
        self.anatomy, self.grid, self.vessels = anatomy, grid, vessels
        self.xs, self.ys = grid.xs(), grid.ys()
        x, y = np.meshgrid(self.xs, self.ys)
        bx, by = anatomy.body_axes_mm
        power = np.where(y > 0, 2.6, 2.0).astype(np.float32)  # a flatter back (supine)
        body_r = (np.abs(x / bx) ** power + np.abs(y / by) ** power) ** (1.0 / power)
        self.body_r = body_r.astype(np.float32)
        self.lung_r = tuple(self._lung_field(x, y, side) for side in (-1, 1))
        self.mediastinum_r = np.sqrt((x / (0.2 * bx)) ** 2 + ((y + 0.1 * by) / (0.75 * by)) ** 2)
        ay = anatomy.lung_axes_mm[1]
        grade = np.clip((y - (anatomy.lung_y_mm - ay)) / (2 * ay), 0.0, 1.0)
        self.lung_hu = (-870.0 + 70.0 * grade).astype(np.float32)
        curve = by + 4.0 - x * x / 800.0  # the couch: two thin concave-up shells
        shells = ((y >= curve) & (y < curve + 2.5)) | ((y >= curve + 22.0) & (y < curve + 25.0))
        self.table = shells & (np.abs(x) < 1.05 * bx)

    def _lung_field(self, x: np.ndarray, y: np.ndarray, side: int) -> np.ndarray:
        a2, p2, a3, p3 = self.anatomy.lung_harmonics
        ax, ay = self.anatomy.lung_axes_mm
        dx = (x - side * self.anatomy.lung_offset_mm) / ax
        dy = (y - self.anatomy.lung_y_mm) / ay
        theta = np.arctan2(dy, dx * side)
        wobble = 1.0 + a2 * np.cos(2 * theta + p2) + a3 * np.cos(3 * theta + p3)
        return (np.sqrt(dx * dx + dy * dy) / wobble).astype(np.float32)

    def render(
        self,
        z_mm: float,
        lesions: tuple[Lesion, ...],
        noise: np.random.Generator,
        thickness_mm: float,
        *,
        labels: bool = False,
    ) -> RenderedSlice:
        """The slice centred at ``z_mm`` (HU, noise drawn from ``noise``) and its lesions."""
        t = self.anatomy.t_at(z_mm)
        size = self.grid.size
        hu = np.full((size, size), -1000.0, dtype=np.float32)
        lab = np.zeros((size, size), dtype=np.uint8) if labels else None
        inner = self._paint_body(hu, lab, t)
        lungs = self._paint_lungs(hu, lab, t, inner)
        self._paint_mediastinum(hu, lab, t)
        self._paint_vessels(hu, lab, lungs & (hu < -600.0), z_mm, thickness_mm)
        envelope = lungs | (self.mediastinum_r < 1.0)  # tumours stay off the chest wall
        sections = paint_lesions(hu, lab, lesions, self.xs, self.ys, z_mm, envelope & inner)
        bone = self._paint_bones(hu, t, z_mm) > 0.5
        hu[self.table] = 150.0
        if lab is not None:
            lab[bone] = Tissue.BONE
            lab[self.table] = Tissue.TABLE
        kept = tuple(s for s in (s.without(bone) for s in sections) if s.area_px)
        sigma = 0.45 / self.grid.spacing_mm
        if sigma >= 0.3:
            hu = np.asarray(cv2.GaussianBlur(hu, (0, 0), sigma), dtype=np.float32)
        hu += noise.standard_normal((size, size), dtype=np.float32) * np.float32(
            self.anatomy.noise_hu
        )
        np.clip(hu, -1024.0, 3071.0, out=hu)
        return RenderedSlice(hu=hu, labels=lab, sections=kept)

    def _paint_body(self, hu: np.ndarray, lab: np.ndarray | None, t: float) -> np.ndarray:
        """Body, its fat layer and the liver; returns the inside of the fat layer."""
        anatomy = self.anatomy
        body = self.body_r < anatomy.body_scale(t)
        inner = self.body_r < anatomy.inner_scale(t)
        hu[body] = -100.0
        hu[inner] = 45.0
        _label(lab, body, Tissue.FAT)
        _label(lab, inner, Tissue.SOFT)
        liver = min(max((t - 0.7) / 0.3, 0.0), 1.0)
        bx, by = anatomy.body_axes_mm
        patch = _ellipse_patch(
            self.xs, self.ys, -0.22 * bx, 0.05 * by, 0.6 * bx * liver, 0.65 * by * liver
        )
        if patch is not None:
            rs, cs, mask = patch
            mask &= inner[rs, cs]
            hu[rs, cs][mask] = 58.0
            _label_patch(lab, rs, cs, mask, Tissue.LIVER)
        return inner

    def _paint_lungs(
        self, hu: np.ndarray, lab: np.ndarray | None, t: float, inner: np.ndarray
    ) -> np.ndarray:
        """Paint both lungs; returns their mask."""
        lungs = np.zeros(hu.shape, dtype=bool)
        for field, side in zip(self.lung_r, (-1, 1)):
            scale = self.anatomy.lung_scale(t, side)
            if scale >= 0.08:
                lungs |= field < scale
        lungs &= inner
        np.copyto(hu, self.lung_hu, where=lungs)
        _label(lab, lungs, Tissue.LUNG)
        return lungs

    def _mediastinum_shapes(
        self, t: float
    ) -> list[tuple[float, float, float, float, float, Tissue]]:
        """(X, Y, semi-axis X, semi-axis Y mm, HU, tissue) of the mediastinum at ``t``."""
        a = self.anatomy
        bx, by = a.body_axes_mm
        blood = CONTRAST_HU if a.contrast else BLOOD_HU
        airway_y = a.spine_y_mm - a.vertebra_radius_mm
        heart = math.sin(math.pi * min(max((t - 0.4) / 0.7, 0.0), 1.0))
        (hx, hy), (hax, hay) = a.heart_centre_mm, a.heart_axes_mm
        fat = min(max(t / 0.1, 0.0), 1.0, max((1.05 - t) / 0.15, 0.0))
        shapes = [
            (0.0, -0.3 * by, 0.15 * bx * fat, 0.5 * by * fat, -90.0, Tissue.FAT),
            (hx, hy, hax * heart, hay * heart, 40.0, Tissue.HEART),
            (hx + 0.1 * hax, hy, 0.6 * hax * heart, 0.55 * hay * heart, blood, Tissue.HEART),
            (5.0, airway_y - 6.0, 6.0, 6.0, 45.0, Tissue.SOFT),  # oesophagus
        ]
        if t >= 0.25:  # descending aorta
            shapes.append((0.14 * bx, airway_y + 2.0, 12.0, 12.0, blood, Tissue.BLOOD))
        if 0.25 <= t < 0.5:  # ascending aorta
            shapes.append((-5.0, -0.3 * by, 15.0, 15.0, blood, Tissue.BLOOD))
        if 0.32 <= t < 0.45:  # pulmonary trunk
            shapes.append((12.0, -0.2 * by, 13.0, 13.0, blood, Tissue.BLOOD))
        if 0.1 <= t < 0.45:  # superior vena cava
            shapes.append((-28.0, -0.22 * by, 9.0, 9.0, blood + 30.0, Tissue.BLOOD))
        if t < 0.33:  # trachea with its wall
            shapes.append((0.0, airway_y - 15.0, 10.0, 10.0, 45.0, Tissue.SOFT))
            shapes.append((0.0, airway_y - 15.0, 8.0, 8.0, -1000.0, Tissue.AIRWAY))
        elif t < 0.45:  # main bronchi
            for side in (-1, 1):
                shapes.append((side * 16.0, airway_y - 12.0, 6.0, 6.0, -1000.0, Tissue.AIRWAY))
        return shapes

    def _paint_mediastinum(self, hu: np.ndarray, lab: np.ndarray | None, t: float) -> None:
        for cx, cy, ax, ay, value, tissue in self._mediastinum_shapes(t):
            patch = _ellipse_patch(self.xs, self.ys, cx, cy, ax, ay)
            if patch is not None:
                rs, cs, mask = patch
                hu[rs, cs][mask] = value
                _label_patch(lab, rs, cs, mask, tissue)
        if 0.18 <= t < 0.25:  # aortic arch: a band from the ascending to the descending aorta
            a = self.anatomy
            bx, by = a.body_axes_mm
            cover = np.zeros(hu.shape, dtype=np.uint8)
            start = _fixed(*self.grid.to_px(-5.0, -0.3 * by))
            end = _fixed(*self.grid.to_px(0.14 * bx, a.spine_y_mm - a.vertebra_radius_mm + 2.0))
            thick = max(1, round(24.0 / self.grid.spacing_mm))
            cv2.line(cover, start, end, 255, thick, cv2.LINE_8, _SHIFT)
            hu[cover > 0] = CONTRAST_HU if a.contrast else BLOOD_HU
            _label(lab, cover > 0, Tissue.BLOOD)

    def _paint_vessels(
        self,
        hu: np.ndarray,
        lab: np.ndarray | None,
        lung: np.ndarray,
        z_mm: float,
        thickness_mm: float,
    ) -> None:
        """The parts of vessel segments inside the slab, anti-aliased, only in ``lung``."""
        v = self.vessels
        z0, z1 = v[:, 2], v[:, 5]
        dz = np.where(np.abs(z1 - z0) < 1e-3, np.float32(1e-3), z1 - z0)
        ta = np.clip((z_mm - thickness_mm / 2 - z0) / dz, 0.0, 1.0)
        tb = np.clip((z_mm + thickness_mm / 2 - z0) / dz, 0.0, 1.0)
        lo, hi = np.minimum(ta, tb), np.maximum(ta, tb)
        cover = np.zeros(hu.shape, dtype=np.uint8)
        ps = self.grid.spacing_mm
        for i in np.nonzero(hi > lo)[0]:
            a = v[i, :3] + (v[i, 3:6] - v[i, :3]) * lo[i]
            b = v[i, :3] + (v[i, 3:6] - v[i, :3]) * hi[i]
            diameter = float(v[i, 6])
            start, end = _fixed(*self.grid.to_px(a[0], a[1])), _fixed(*self.grid.to_px(b[0], b[1]))
            value = round(255 * min(1.0, diameter / ps))  # thinner than a pixel: fainter
            cv2.line(cover, start, end, value, max(1, round(diameter / ps)), cv2.LINE_AA, _SHIFT)
        weight = cover.astype(np.float32) * np.float32(1 / 255) * lung
        hu += weight * (np.float32(BLOOD_HU) - hu)
        _label(lab, lung & (cover > 127), Tissue.BLOOD)

    def _paint_bones(self, hu: np.ndarray, t: float, z_mm: float) -> np.ndarray:
        """Paint the bone layers; returns their coverage (0..1, float32)."""
        ps = self.grid.spacing_mm
        covered = np.zeros(hu.shape, dtype=np.float32)
        for value, ellipses in bone_layers(self.anatomy, t, z_mm):
            cover = np.zeros(hu.shape, dtype=np.uint8)
            for cx, cy, ax, ay, angle in ellipses:
                axes = (
                    max(1, round(ax / ps * (1 << _SHIFT))),
                    max(1, round(ay / ps * (1 << _SHIFT))),
                )
                centre = _fixed(*self.grid.to_px(cx, cy))
                cv2.ellipse(cover, centre, axes, angle, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)
            weight = cover.astype(np.float32) * np.float32(1 / 255)
            hu += weight * (np.float32(value) - hu)
            np.maximum(covered, weight, out=covered)
        return covered


def suv_map(rendered: RenderedSlice, lesions: tuple[Lesion, ...], fwhm_px: float) -> np.ndarray:
    """FDG uptake (SUV, float32) of a slice rendered with ``labels=True``.

    Tissue SUV: lung 0.35, fat 0.4, soft tissue 0.8, bone 1.2, blood 1.6, liver 2.2,
    heart 3.0; a lesion's solid part its own SUV (2.5-16), its halo 1.2. Blurred to
    the PET resolution ``fwhm_px``.

    Raises:
        ValueError: the slice was rendered without labels.
    """
    if rendered.labels is None:
        raise ValueError("suv_map needs a slice rendered with labels=True")
    suv = _SUV[rendered.labels]
    for section in rendered.sections:
        view = suv[section.rows, section.cols]
        view[section.solid] = lesions[section.index].suv
    sigma = fwhm_px / 2.355
    return cv2.GaussianBlur(suv, (0, 0), sigma) if sigma >= 0.3 else suv


def fused_rgb(hu: np.ndarray, suv: np.ndarray, suv_max: float = 8.0) -> np.ndarray:
    """A fused PET/CT screenshot: CT in a wide window (W1000/L-300: lung dark, ground
    glass grey, soft tissue light), SUV in a hot colour map (black-red-yellow-white up to
    ``suv_max``) blended over it.

    Returns:
        uint8 rows × columns × 3 (RGB).
    """
    grey = np.clip((hu + np.float32(800.0)) * np.float32(1 / 1000), 0.0, 1.0)
    level = np.clip(suv * np.float32(1 / suv_max), 0.0, 1.0)
    alpha = np.minimum(level * np.float32(1.5), np.float32(0.7))
    base = grey * (1 - alpha)
    out = np.empty((*hu.shape, 3), dtype=np.uint8)
    for channel in range(3):
        hot = np.clip(level * np.float32(3) - np.float32(channel), 0.0, 1.0)
        out[..., channel] = np.rint((base + alpha * hot) * np.float32(255))
    return out


def _ellipse_patch(
    xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, ax: float, ay: float
) -> tuple[slice, slice, np.ndarray] | None:
    """Rows, columns and mask of an axis-aligned ellipse (mm), cut to its bounding box."""
    if ax <= 0 or ay <= 0:
        return None
    cols = np.nonzero(np.abs(xs - cx) <= ax)[0]
    rows = np.nonzero(np.abs(ys - cy) <= ay)[0]
    if len(cols) == 0 or len(rows) == 0:
        return None
    rs, cs = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    dx = ((xs[cs] - cx) / ax) ** 2
    dy = ((ys[rs] - cy) / ay) ** 2
    return rs, cs, (dy[:, None] + dx[None, :]) < 1.0


def _fixed(col: float, row: float) -> tuple[int, int]:
    return (round(col * (1 << _SHIFT)), round(row * (1 << _SHIFT)))


def _label(lab: np.ndarray | None, mask: np.ndarray, tissue: Tissue) -> None:
    if lab is not None:
        lab[mask] = tissue


def _label_patch(
    lab: np.ndarray | None, rs: slice, cs: slice, mask: np.ndarray, tissue: Tissue
) -> None:
    if lab is not None:
        lab[rs, cs][mask] = tissue
