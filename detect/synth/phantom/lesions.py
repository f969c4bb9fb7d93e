"""Phantom lung tumours: 3D lobulated, spiculated ellipsoids whose look follows histology.

Loosely after radiology (a phantom, not a model of disease):

- ``A`` adenocarcinoma: peripheral, part-solid: a solid core (about 25 HU) inside a
  ground-glass halo (about -550 HU), 10-30 mm, spiculated; upper and middle chest.
- ``B`` small-cell: hilar, next to the mediastinum, strongly lobulated, 20-50 mm, with
  1-3 bulky nodes (10-24 mm) fused to it on the mediastinal side.
- ``E`` large-cell: big peripheral solid mass, 35-60 mm, half of them with a necrotic
  (about 15 HU) centre.
- ``G`` squamous: central (medial half of the lung), 25-50 mm, 45% cavitated (air,
  half of those with an air-fluid level).

A patient has one lesion, 15% a second, smaller, peripheral one in the other lung.
The surface in direction ``u`` (unit, in radius-normalised space) sits at
``1 + sum(lobe * max(0, u.d)^2) + sum(spike * max(0, (u.d - c) / (1 - c))^3)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from detect.synth.phantom.anatomy import Anatomy, Tissue

_SPIKE_COS = math.cos(math.radians(14.0))

Direction = tuple[float, float, float, float]  # unit x, y, z and an amplitude


@dataclass(frozen=True)
class Lesion:
    """One tumour in phantom mm (X, Y as the image frame, z patient)."""

    letter: str
    kind: str
    centre_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    lobes: tuple[Direction, ...]
    spikes: tuple[Direction, ...]
    solid_fraction: float
    solid_hu: float
    halo_hu: float
    hollow_fraction: float
    hollow_hu: float
    fluid_level: float | None
    nodes: tuple[tuple[float, float, float, float], ...]
    suv: float

    @property
    def extent_factor(self) -> float:
        """Largest surface radius relative to the ellipsoid's radii."""
        return 1.0 + sum(d[3] for d in self.lobes) + max((d[3] for d in self.spikes), default=0.0)

    def z_range_mm(self) -> tuple[float, float]:
        """Lowest and highest z (mm) the lesion (nodes included) can reach."""
        reach = self.radii_mm[2] * self.extent_factor
        lo, hi = self.centre_mm[2] - reach, self.centre_mm[2] + reach
        for _, _, nz, nr in self.nodes:
            lo, hi = min(lo, nz - nr), max(hi, nz + nr)
        return (lo, hi)


@dataclass(frozen=True)
class LesionSection:
    """A lesion cut by one slice: its mask and solid part in the patch ``rows``×``cols``."""

    index: int
    rows: slice
    cols: slice
    mask: np.ndarray
    solid: np.ndarray

    @property
    def area_px(self) -> int:
        """Pixels of the lesion on this slice."""
        return int(self.mask.sum())

    @property
    def solid_area_px(self) -> int:
        """Pixels of the solid part (above about -300 HU before noise)."""
        return int(self.solid.sum())

    def without(self, excluded: np.ndarray) -> LesionSection:
        """The section minus the full-image mask ``excluded`` (bone painted over it)."""
        keep = ~excluded[self.rows, self.cols]
        return replace(self, mask=self.mask & keep, solid=self.solid & keep)

    def box_xyxy(self) -> tuple[float, float, float, float]:
        """Tight box in px, pixel-edge xyxy (a lone pixel (c, r) is (c, r, c+1, r+1)).

        Raises:
            ValueError: the section is empty.
        """
        rows = np.nonzero(self.mask.any(axis=1))[0]
        cols = np.nonzero(self.mask.any(axis=0))[0]
        if len(rows) == 0:
            raise ValueError(f"lesion {self.index}: empty section has no box")
        r0, c0 = self.rows.start, self.cols.start
        return (
            float(c0 + cols[0]),
            float(r0 + rows[0]),
            float(c0 + cols[-1] + 1),
            float(r0 + rows[-1] + 1),
        )


@dataclass(frozen=True)
class _Style:
    diameter_mm: tuple[float, float]
    where: str
    t_range: tuple[float, float]
    lobes: tuple[int, int, float, float]
    spikes: tuple[int, int, float, float]
    suv: tuple[float, float]


_STYLES = {
    "A": _Style((10, 30), "peripheral", (0.2, 0.6), (2, 3, 0.08, 0.18), (4, 8, 0.3, 0.7), (2.5, 6)),
    "B": _Style((20, 50), "hilar", (0.35, 0.55), (4, 6, 0.15, 0.3), (0, 2, 0.2, 0.4), (8, 14)),
    "E": _Style((35, 60), "peripheral", (0.3, 0.75), (3, 4, 0.1, 0.2), (0, 3, 0.2, 0.4), (8, 14)),
    "G": _Style((25, 50), "central", (0.3, 0.65), (2, 4, 0.1, 0.2), (0, 4, 0.2, 0.5), (9, 16)),
}


def _directions(
    rng: np.random.Generator, spec: tuple[int, int, float, float]
) -> tuple[Direction, ...]:
    count_lo, count_hi, amp_lo, amp_hi = spec
    count = int(rng.integers(count_lo, count_hi + 1))
    vectors = rng.normal(size=(count, 3))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
    amps = rng.uniform(amp_lo, amp_hi, count)
    return tuple((float(x), float(y), float(z), float(a)) for (x, y, z), a in zip(vectors, amps))


def _place(
    rng: np.random.Generator, anatomy: Anatomy, where: str, t: float, side: int, radius: float
) -> tuple[float, float]:
    """Centre (X, Y) mm of a lesion in one lung at ``t``: peripheral, central or hilar."""
    cx, cy, ax, ay = anatomy.lung_ellipse(t, side)
    lateral = 0.0 if side > 0 else math.pi
    medial = math.pi - lateral
    if where == "peripheral":
        theta = lateral + rng.uniform(-1.75, 1.75)
        fraction = min(max(1.0 - 0.8 * radius / max(min(ax, ay), 1.0), 0.3), 0.85)
    elif where == "central":
        theta, fraction = medial + rng.uniform(-0.8, 0.8), rng.uniform(0.3, 0.5)
    else:
        theta, fraction = medial + rng.uniform(-0.6, 0.6), rng.uniform(0.6, 0.8)
    return (cx + fraction * ax * math.cos(theta), cy + fraction * ay * math.sin(theta))


def _lesion(
    rng: np.random.Generator, anatomy: Anatomy, letter: str, side: int, scale: float, primary: bool
) -> Lesion:
    style = _STYLES[letter]
    where = style.where if primary else "peripheral"
    t = float(rng.uniform(*style.t_range))
    radius = scale * float(rng.uniform(*style.diameter_mm)) / 2.0
    x, y = _place(rng, anatomy, where, t, side, radius)
    radii = tuple(radius * float(np.clip(1 + rng.normal(0, 0.12), 0.75, 1.25)) for _ in range(3))
    solid_fraction, halo, hollow, hollow_hu, fluid = 1.0, -550.0, 0.0, 0.0, None
    kind = f"{where} solid"
    if letter == "A":
        solid_fraction = float(rng.uniform(0.4, 0.7))
        halo = float(rng.uniform(-620.0, -480.0))
        kind = f"{where} part-solid"
    elif letter == "G" and rng.random() < 0.45:
        hollow, hollow_hu = float(rng.uniform(0.3, 0.5)), -950.0
        fluid = float(rng.uniform(-0.2, 0.4)) if rng.random() < 0.5 else None
        kind = f"{where} cavitated" + (" with air-fluid level" if fluid is not None else "")
    elif letter == "E" and rng.random() < 0.5:
        hollow, hollow_hu = float(rng.uniform(0.3, 0.5)), float(rng.uniform(10.0, 20.0))
        kind = f"{where} necrotic"
    z = anatomy.z_at(t)
    nodes: tuple[tuple[float, float, float, float], ...] = ()
    if letter == "B" and primary:
        nodes = _nodes(rng, (x, y, z), radius, side)
        kind = f"{where} lobulated with nodes"
    return Lesion(
        letter=letter,
        kind=kind,
        centre_mm=(x, y, z),
        radii_mm=radii,  # type: ignore[arg-type]
        lobes=_directions(rng, style.lobes),
        spikes=_directions(rng, style.spikes),
        solid_fraction=solid_fraction,
        solid_hu=float(rng.uniform(25.0, 40.0)),
        halo_hu=halo,
        hollow_fraction=hollow,
        hollow_hu=hollow_hu,
        fluid_level=fluid,
        nodes=nodes,
        suv=float(rng.uniform(*style.suv)),
    )


def _nodes(
    rng: np.random.Generator, centre: tuple[float, float, float], radius: float, side: int
) -> tuple[tuple[float, float, float, float], ...]:
    medial = 0.0 if side < 0 else math.pi
    result = []
    for _ in range(int(rng.integers(1, 4))):
        theta = medial + rng.uniform(-0.7, 0.7)
        distance = radius * rng.uniform(0.7, 1.0)
        result.append(
            (
                centre[0] + distance * math.cos(theta),
                centre[1] + distance * math.sin(theta),
                centre[2] + radius * rng.uniform(-0.5, 0.5),
                float(rng.uniform(5.0, 12.0)),
            )
        )
    return tuple(result)


def make_lesions(rng: np.random.Generator, letter: str, anatomy: Anatomy) -> tuple[Lesion, ...]:
    """The lesions of one patient with histology ``letter`` (A, B, E or G).

    Raises:
        ValueError: for another letter.
    """
    if letter not in _STYLES:
        raise ValueError(f"histology letter must be one of {sorted(_STYLES)}, got {letter!r}")
    side = -1 if rng.random() < 0.5 else 1
    lesions = [_lesion(rng, anatomy, letter, side, 1.0, primary=True)]
    if rng.random() < 0.15:
        lesions.append(_lesion(rng, anatomy, letter, -side, 0.6, primary=False))
    return tuple(lesions)


def _patch(lesion: Lesion, xs: np.ndarray, ys: np.ndarray, z: float) -> tuple[slice, slice] | None:
    lo, hi = lesion.z_range_mm()
    if not lo < z < hi:
        return None
    ext = lesion.extent_factor
    cx, cy, _ = lesion.centre_mm
    x_lo, x_hi = cx - lesion.radii_mm[0] * ext, cx + lesion.radii_mm[0] * ext
    y_lo, y_hi = cy - lesion.radii_mm[1] * ext, cy + lesion.radii_mm[1] * ext
    for nx, ny, _, nr in lesion.nodes:
        x_lo, x_hi = min(x_lo, nx - nr), max(x_hi, nx + nr)
        y_lo, y_hi = min(y_lo, ny - nr), max(y_hi, ny + nr)
    cols = np.nonzero((xs >= x_lo) & (xs <= x_hi))[0]
    rows = np.nonzero((ys >= y_lo) & (ys <= y_hi))[0]
    if len(cols) == 0 or len(rows) == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _fields(
    lesion: Lesion, x: np.ndarray, y: np.ndarray, z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Outer, solid, hollow and fluid masks on the patch (x: 1 × W mm, y: H × 1 mm)."""
    (cx, cy, cz), (rx, ry, rz) = lesion.centre_mm, lesion.radii_mm
    sx, sy, sz = (x - cx) / rx, (y - cy) / ry, (z - cz) / rz
    rho = np.sqrt(sx * sx + sy * sy + sz * sz) + np.float32(1e-6)
    ux, uy, uz = sx / rho, sy / rho, sz / rho
    reach = np.ones_like(rho)
    for dx, dy, dz, amp in lesion.lobes:
        reach += amp * np.maximum(ux * dx + uy * dy + uz * dz, 0.0) ** 2
    for dx, dy, dz, amp in lesion.spikes:
        dot = ux * dx + uy * dy + uz * dz
        reach += amp * np.maximum((dot - _SPIKE_COS) / (1 - _SPIKE_COS), 0.0) ** 3
    q = rho / reach
    outer, solid = q < 1.0, q < lesion.solid_fraction
    hollow = q < lesion.hollow_fraction
    fluid = np.zeros_like(hollow)
    if lesion.fluid_level is not None:
        fluid = hollow & (sy > lesion.fluid_level * lesion.hollow_fraction)
    for nx, ny, nz, nr in lesion.nodes:
        node = (x - nx) ** 2 + (y - ny) ** 2 + (z - nz) ** 2 < nr * nr
        outer, solid = outer | node, solid | node
        hollow &= ~node
    return outer, solid, hollow, fluid


def paint_lesions(
    hu: np.ndarray,
    labels: np.ndarray | None,
    lesions: tuple[Lesion, ...],
    xs: np.ndarray,
    ys: np.ndarray,
    z: float,
    inside: np.ndarray,
) -> list[LesionSection]:
    """Paint every lesion cut by the slice at ``z`` mm into ``hu`` (in place).

    Lesions are kept to ``inside`` (the body within its fat layer). Returns the sections,
    empty ones included.
    """
    sections = []
    for index, lesion in enumerate(lesions):
        patch = _patch(lesion, xs, ys, z)
        if patch is None:
            continue
        rs, cs = patch
        outer, solid, hollow, fluid = _fields(lesion, xs[None, cs], ys[rs, None], z)
        keep = inside[rs, cs]
        outer, solid, hollow, fluid = outer & keep, solid & keep, hollow & keep, fluid & keep
        view = hu[rs, cs]
        halo = outer & ~solid
        view[halo] = np.maximum(view[halo], lesion.halo_hu)
        view[solid] = lesion.solid_hu
        view[hollow] = lesion.hollow_hu
        view[fluid] = 12.0
        if labels is not None:
            labels[rs, cs][outer] = Tissue.LESION
        dense = (solid & ~(hollow & (lesion.hollow_hu < -300.0))) | fluid
        sections.append(LesionSection(index, rs, cs, outer, dense))
    return sections
