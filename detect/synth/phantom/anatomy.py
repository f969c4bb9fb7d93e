"""The phantom chest's geometry: image grid, per-patient anatomy, vessel tree, bones.

Frame: ``X`` mm towards the patient's left (image right), ``Y`` mm posterior (image
down), both from the centre of the body; ``z`` mm along the patient axis (superior is +,
as in DICOM LPS). The lungs run from the apices at ``apex_z_mm`` down ``chest_length_mm``
to their bases; ``t`` is the fraction of that way (0 apex, 1 base; outside 0..1 is neck
or abdomen). Nothing here draws pixels; :mod:`detect.synth.phantom.render` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

#: An ellipse in phantom mm: centre X, centre Y, semi-axis along its angle, other
#: semi-axis, angle (degrees, clockwise on screen from the +X axis).
Ellipse = tuple[float, float, float, float, float]


class Tissue(IntEnum):
    """Labels of the optional tissue map (used for the PET uptake and for tests)."""

    AIR = 0
    FAT = 1
    SOFT = 2
    LUNG = 3
    HEART = 4
    BLOOD = 5
    BONE = 6
    AIRWAY = 7
    LIVER = 8
    TABLE = 9
    LESION = 10


@dataclass(frozen=True)
class Grid:
    """A square image grid: ``size`` px over ``fov_mm``, centred at ``centre_mm`` (X, Y)."""

    size: int
    fov_mm: float
    centre_mm: tuple[float, float] = (0.0, 0.0)

    @property
    def spacing_mm(self) -> float:
        """Pixel spacing, mm (rows = columns)."""
        return self.fov_mm / self.size

    def xs(self) -> np.ndarray:
        """X (mm) of each column's pixel centre, float32."""
        return self._axis(self.centre_mm[0])

    def ys(self) -> np.ndarray:
        """Y (mm) of each row's pixel centre, float32."""
        return self._axis(self.centre_mm[1])

    def _axis(self, centre: float) -> np.ndarray:
        ps = self.spacing_mm
        return ((np.arange(self.size) + 0.5) * ps - self.fov_mm / 2 + centre).astype(np.float32)

    def to_px(self, x_mm: float, y_mm: float) -> tuple[float, float]:
        """Phantom mm → (column, row) px, with pixel centres at integers."""
        ps = self.spacing_mm
        col = (x_mm - self.centre_mm[0] + self.fov_mm / 2) / ps - 0.5
        row = (y_mm - self.centre_mm[1] + self.fov_mm / 2) / ps - 0.5
        return (col, row)


@dataclass(frozen=True)
class Anatomy:
    """One patient's chest; lengths in mm, ``apex_z_mm`` in patient z (mm)."""

    body_axes_mm: tuple[float, float]
    fat_mm: float
    lung_offset_mm: float
    lung_y_mm: float
    lung_axes_mm: tuple[float, float]
    lung_harmonics: tuple[float, float, float, float]
    heart_centre_mm: tuple[float, float]
    heart_axes_mm: tuple[float, float]
    spine_y_mm: float
    vertebra_radius_mm: float
    apex_z_mm: float
    chest_length_mm: float
    noise_hu: float
    contrast: bool
    rib_phase: float

    def t_at(self, z_mm: float) -> float:
        """Fraction of the way from the lung apices (0) to the bases (1) at ``z_mm``."""
        return (self.apex_z_mm - z_mm) / self.chest_length_mm

    def z_at(self, t: float) -> float:
        """Patient z (mm) at fraction ``t``."""
        return self.apex_z_mm - t * self.chest_length_mm

    @staticmethod
    def body_scale(t: float) -> float:
        """Body size at ``t`` relative to mid-chest (narrower towards the neck)."""
        return 0.88 + 0.12 * math.sin(math.pi / 2 * min(max(t, 0.0) / 0.5, 1.0))

    def inner_scale(self, t: float) -> float:
        """Normalised body radius of the inside of the subcutaneous fat at ``t``."""
        return self.body_scale(t) * (1.0 - self.fat_mm / self.body_axes_mm[1])

    def lung_scale(self, t: float, side: int) -> float:
        """Lung size at ``t`` relative to its largest (0 where there is no lung).

        ``side`` is -1 for the right lung (image left), +1 for the left lung.
        """
        end = 1.0 if side > 0 else 0.95  # the right hemidiaphragm sits higher
        if t <= 0.0 or t >= end:
            return 0.0
        up = math.sin(math.pi / 2 * min(t / 0.55, 1.0)) ** 0.6
        down = 1.0 if t <= 0.55 else max(0.0, 1.0 - ((t - 0.55) / (end - 0.55)) ** 2) ** 0.5
        return up * down

    def lung_ellipse(self, t: float, side: int) -> tuple[float, float, float, float]:
        """(centre X, centre Y, semi-axis X, semi-axis Y) of one lung at ``t``, mm."""
        scale = self.lung_scale(t, side)
        cy = self.lung_y_mm + 15.0 * max(0.0, t - 0.6)  # the bases recede posteriorly
        ax, ay = self.lung_axes_mm
        return (side * self.lung_offset_mm, cy, ax * scale, ay * scale)


def make_anatomy(rng: np.random.Generator) -> Anatomy:
    """A plausible adult chest, varying a little between patients."""
    bx = float(rng.uniform(145.0, 170.0))
    by = bx * float(rng.uniform(0.66, 0.76))
    radius = float(rng.uniform(15.0, 19.0))
    return Anatomy(
        body_axes_mm=(bx, by),
        fat_mm=float(rng.uniform(7.0, 18.0)),
        lung_offset_mm=0.42 * bx,
        lung_y_mm=0.03 * by,
        lung_axes_mm=(0.31 * bx * float(rng.uniform(0.95, 1.05)), 0.68 * by),
        lung_harmonics=(
            float(rng.uniform(0.02, 0.07)),
            float(rng.uniform(0.0, 2 * math.pi)),
            float(rng.uniform(0.01, 0.04)),
            float(rng.uniform(0.0, 2 * math.pi)),
        ),
        heart_centre_mm=(0.1 * bx, -0.2 * by),
        heart_axes_mm=(0.32 * bx * float(rng.uniform(0.9, 1.1)), 0.4 * by),
        spine_y_mm=by - radius - 46.0,
        vertebra_radius_mm=radius,
        apex_z_mm=float(rng.uniform(250.0, 350.0)),
        chest_length_mm=float(rng.uniform(220.0, 260.0)),
        noise_hu=float(rng.uniform(10.0, 20.0)),
        contrast=bool(rng.random() < 0.3),
        rib_phase=float(rng.random()),
    )


def make_vessel_tree(rng: np.random.Generator, anatomy: Anatomy, depth: int = 5) -> np.ndarray:
    """Pulmonary vessels as 3D segments branching out of each hilum.

    Returns:
        float32 array (M, 7): x0, y0, z0, x1, y1, z1 (mm) and diameter (mm); 10 mm at the
        hilum, x0.72 per generation (about 1.9 mm at the periphery).
    """
    segments = []
    ax, ay = anatomy.lung_axes_mm
    for side in (-1, 1):
        hilum = np.array(
            [
                side * (anatomy.lung_offset_mm - 0.55 * ax),
                anatomy.lung_y_mm - 0.1 * ay,
                anatomy.z_at(0.45),
            ]
        )
        roots = np.array(
            [
                [0.3 * side, 0.0, 1.0],
                [side, 0.1, 0.0],
                [0.3 * side, 0.2, -1.0],
                [0.4 * side, -1.0, -0.2],
                [0.4 * side, 1.0, -0.3],
            ]
        )
        dirs = roots / np.linalg.norm(roots, axis=1, keepdims=True)
        starts = np.repeat(hilum[None, :], len(dirs), axis=0)
        length, diameter = 32.0, 10.0
        for _ in range(depth + 1):
            ends = starts + dirs * length * rng.uniform(0.8, 1.2, (len(dirs), 1))
            segments.append(np.hstack([starts, ends, np.full((len(dirs), 1), diameter)]))
            children = np.repeat(dirs, 2, axis=0) + rng.normal(0.0, 0.45, (2 * len(dirs), 3))
            dirs = children / np.linalg.norm(children, axis=1, keepdims=True)
            starts = np.repeat(ends, 2, axis=0)
            length, diameter = length * 0.78, diameter * 0.72
    return np.vstack(segments).astype(np.float32)


CORTEX_HU, MARROW_HU, DISC_HU, CSF_HU = 700.0, 250.0, 85.0, 15.0


def bone_layers(anatomy: Anatomy, t: float, z_mm: float) -> list[tuple[float, list[Ellipse]]]:
    """Bones on the slice at ``z_mm``: layers of (HU, ellipses), to paint in order.

    Vertebra (a disc every 28 mm of z), posterior arch, ribs (cross-sections that slide
    round the chest wall with z, as oblique ribs do) and sternum.
    """
    bx, by = anatomy.body_axes_mm
    r, sy = anatomy.vertebra_radius_mm, anatomy.spine_y_mm
    disc = (z_mm % 28.0) < 5.0
    cortex: list[Ellipse] = [
        (-9.0, sy + r + 9.0, 8.0, 3.5, 60.0),
        (9.0, sy + r + 9.0, 8.0, 3.5, 120.0),
        (0.0, sy + r + 22.0, 10.0, 3.5, 90.0),
        (-(r + 6.0), sy + 0.6 * r, 9.0, 3.5, -20.0),
        (r + 6.0, sy + 0.6 * r, 9.0, 3.5, 20.0),
    ]
    marrow: list[Ellipse] = []
    if not disc:
        cortex.append((0.0, sy, r, 0.9 * r, 0.0))
        marrow.append((0.0, sy, r - 2.2, 0.9 * r - 2.2, 0.0))
    if -0.1 < t < 1.15:
        inner = 0.955 * anatomy.inner_scale(t)
        phase = (z_mm / 28.0 + anatomy.rib_phase) % 1.0
        for side in (-1, 1):
            for j in range(6):
                phi = math.radians(25.0 + 21.0 * (j + phase))  # 0 = posterior midline
                x, y = side * math.sin(phi) * bx * inner, math.cos(phi) * by * inner
                angle = math.degrees(math.atan2(-math.sin(phi) * by, side * math.cos(phi) * bx))
                cortex.append((x, y, 6.0, 3.8, angle))
                marrow.append((x, y, 3.8, 1.8, angle))
    if 0.05 < t < 0.8:
        y = -by * anatomy.inner_scale(t) + 9.0
        cortex.append((0.0, y, 13.0, 6.0, 0.0))
        marrow.append((0.0, y, 10.0, 3.5, 0.0))
    layers = [(CORTEX_HU, cortex), (MARROW_HU, marrow)]
    if disc:
        layers.append((DISC_HU, [(0.0, sy, r, 0.9 * r, 0.0)]))
    layers.append((CSF_HU, [(0.0, sy + r + 8.0, 6.5, 6.5, 0.0)]))
    return layers
