"""Series geometry from headers: positions along the normal, spacing, pixel size, and
pixel-edge points in patient mm; what is missing or inconsistent is None, never a guess."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from detect.io.dicom import SliceHeader
from detect.io.geometry import series_geometry, series_spacing

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def header(k: int, z: float, **changes: object) -> SliceHeader:
    base = SliceHeader(
        path=Path(f"{k}.dcm"), sop_instance_uid=f"1.2.{k}", series_instance_uid="1.2.3",
        study_instance_uid="1.2", patient_id="Lung_Dx-A0001", modality="CT",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2", rows=512, columns=512,
        samples_per_pixel=1, photometric="MONOCHROME2", number_of_frames=1,
        instance_number=k, position=(-250.0, -200.0, z), orientation=AXIAL,
        series_description="", pixel_spacing=(0.7, 0.7))
    return replace(base, **changes)  # type: ignore[arg-type]


def test_axial_series():
    geometry = series_geometry([header(k, -100.0 + 5.0 * k) for k in range(4)])
    assert geometry.positions_mm == pytest.approx((-100.0, -95.0, -90.0, -85.0))
    assert geometry.spacing_mm == pytest.approx(5.0)
    assert geometry.in_mm and geometry.normal == pytest.approx((0.0, 0.0, 1.0))
    # the top-left corner of the first pixel is half a pixel before its centre
    corner = geometry.patient_points(2, np.array([[0.0, 0.0], [10.0, 20.0]]))
    assert corner == pytest.approx(np.array([[-250.35, -200.35, -90.0],
                                             [-250.35 + 7.0, -200.35 + 14.0, -90.0]]))
    assert geometry.plane_box(0, (0.0, 0.0, 10.0, 20.0)) == pytest.approx(
        (-250.35, -200.35, -243.35, -186.35))


def test_repeated_positions_of_several_acquisitions():
    z = [0.0, 0.0, 0.0, 5.0, 5.0, 5.0, 10.0, 10.0, 10.0]
    assert series_spacing(z) == pytest.approx(5.0)
    assert series_spacing([7.0, 7.0]) == 1.0 and series_spacing([]) is None


def test_a_missing_or_non_finite_position_leaves_positions_unknown():
    for bad in (None, (0.0, 0.0, float("nan")), (0.0, 0.0, 1e308)):
        slices = [header(0, 0.0), header(1, 5.0, position=bad)]
        geometry = series_geometry(slices)
        assert geometry.positions_mm is None and not geometry.in_mm
        assert geometry.pixel_mm == (0.7, 0.7)


def test_different_orientations_or_spacings_are_not_one_volume():
    tilted = series_geometry([header(0, 0.0),
                              header(1, 5.0, orientation=(1.0, 0.0, 0.0, 0.0, 0.8, 0.6))])
    assert tilted.positions_mm is None
    mixed = series_geometry([header(0, 0.0), header(1, 5.0, pixel_spacing=(0.9, 0.9))])
    assert mixed.pixel_mm is None and mixed.positions_mm is not None and not mixed.in_mm
    with pytest.raises(ValueError, match="incomplete"):
        mixed.patient_points(0, np.zeros((1, 2)))
