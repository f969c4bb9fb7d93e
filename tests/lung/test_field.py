"""The lung field on a drawn chest: what it keeps (lungs, tumours in and beside them, the
hilum, a slice beyond the base) and what it leaves out (outside the body, stomach gas,
soft tissue far from the lungs, slices far below them), and when it is unavailable."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from support.lungs import CHEST_PIXEL_MM, LEFT_LUNG, chest_hu

from detect.errors import ConfigError
from detect.lung import (
    LungFieldRule,
    LungFieldUnavailable,
    air_inside_body,
    block_size,
    build_lung_field,
    lung_field_rule,
    pixel_size,
)

PIXEL_MM, SPACING_MM = CHEST_PIXEL_MM, 5.0
LUNG_SLICES = range(4, 14)  # slices 0-3 are below the lungs (stomach gas on 1-2)


def chest(slices: int = 16) -> list[np.ndarray]:
    return chest_hu(slices, LUNG_SLICES, gas_slices=(1, 2))


def field(slices: list[np.ndarray], rule: LungFieldRule | None = None, *,
          positions: bool = True):
    rule = rule or LungFieldRule()
    block = block_size(PIXEL_MM, rule.grid_mm)
    air = [air_inside_body(hu, air_hu=rule.air_hu, block=block) for hu in slices]
    where = [SPACING_MM * k for k in range(len(slices))] if positions else None
    return build_lung_field(air, pixel_mm=PIXEL_MM, block=block, positions_mm=where,
                            rule=rule)


@pytest.fixture(scope="module")
def chest_field():
    return field(chest())


@pytest.mark.parametrize(("name", "index", "xyxy"), [
    ("inside a lung", 8, (70, 110, 90, 130)),
    ("juxta-pleural, in the chest wall 6 mm from the lung", 8, (36, 118, 42, 138)),
    ("hilar, in the mediastinum between the lungs", 8, (118, 120, 138, 140)),
    ("a tumour filling a lung's core (a hole in its air)", 8, (160, 115, 192, 141)),
    ("one slice (5 mm) below the lung base", 3, (70, 110, 90, 130)),
])
def test_kept(chest_field, name, index, xyxy):
    assert chest_field.keeps(index, xyxy, 0.0), name


@pytest.mark.parametrize(("name", "index", "xyxy"), [
    ("outside the body", 8, (0, 0, 12, 12)),
    ("on the couch", 8, (100, 232, 150, 244)),
    ("anterior abdominal wall far from the lungs", 8, (120, 40, 136, 50)),
    ("stomach gas under the lungs, 15 mm below the base", 1, (158, 98, 182, 122)),
    ("three slices (15 mm) below the lung base", 1, (70, 110, 90, 130)),
])
def test_dropped(chest_field, name, index, xyxy):
    assert not chest_field.keeps(index, xyxy, 0.0), name
    assert chest_field.box_fraction(index, xyxy) == 0.0


def test_stomach_gas_is_not_a_lung(chest_field):
    assert not chest_field.mask[:2].any()  # the bubble's slices, beyond the z margin


def test_a_tumour_inside_a_lung_is_part_of_the_field():
    slices = chest()
    for hu in slices[4:14]:
        cv2.circle(hu, (176, 128), 14, 40.0, -1)  # solid, surrounded by lung
    built = field(slices)
    assert built.box_fraction(8, (162, 114, 190, 142)) == 1.0
    assert built.lung_mm2[8] > built.lung_mm2[0] == 0.0


def test_min_overlap_asks_for_more_of_the_box():
    rule = LungFieldRule(min_overlap=0.5)
    built = field(chest(), rule)
    half_out = (0, 110, 64, 130)  # half outside the body, a quarter in the lung
    assert 0.0 < built.box_fraction(8, half_out) <= 0.5
    assert built.keeps(8, half_out, 0.0) and not built.keeps(8, half_out, rule.min_overlap)


def test_without_positions_the_field_grows_by_one_slice():
    built = field(chest(), positions=False)
    lung = (70, 110, 90, 130)
    assert built.keeps(3, lung, 0.0) and not built.keeps(2, lung, 0.0)


def test_the_second_lung_is_dropped_when_it_is_too_small():
    slices = chest()
    for hu in slices[4:14]:
        cv2.ellipse(hu, *LEFT_LUNG, 0, 0, 360, 40.0, -1)
        cv2.circle(hu, LEFT_LUNG[0], 8, -850.0, -1)  # a small air pocket, 3% of the right lung
    assert not field(slices).keeps(8, (170, 122, 182, 134), 0.0)
    kept = field(slices, LungFieldRule(second_lung_fraction=0.01))
    assert kept.keeps(8, (170, 122, 182, 134), 0.0)


def test_air_inside_body_on_blocks():
    hu = chest()[8]
    air = air_inside_body(hu, air_hu=-400.0, block=4)
    assert air.shape == (64, 64) and air.dtype == bool
    assert not air[0].any() and not air[:, 0].any()  # the outside is not inside the body
    assert air[128 // 4, 80 // 4] and air[128 // 4, 176 // 4]  # both lungs
    odd = air_inside_body(hu[:255, :253], air_hu=-400.0, block=4)
    assert odd.shape == (63, 63)  # the last partial blocks are left out


@pytest.mark.parametrize(("air", "message"), [
    ([None, None], "no slice"),
    ([np.zeros((4, 4), bool), np.zeros((5, 4), bool)], "different sizes"),
    ([np.zeros((4, 4), bool)] * 3, "no air inside the body"),
])
def test_unavailable(air, message):
    with pytest.raises(LungFieldUnavailable, match=message):
        build_lung_field(air, pixel_mm=1.0, block=3, positions_mm=None, rule=LungFieldRule())


@pytest.mark.parametrize("spacing", [None, (0.7,), (0.0, 0.7), (float("nan"), 0.7)])
def test_no_usable_pixel_spacing(spacing):
    with pytest.raises(LungFieldUnavailable, match="PixelSpacing"):
        pixel_size(spacing)


def test_block_size_follows_the_grid():
    assert block_size(0.65, 3.0) == 4 and block_size(0.76, 3.0) == 3
    assert block_size(5.0, 3.0) == 1


def test_rule_round_trips_and_checks_its_values():
    recorded = lung_field_rule()
    assert recorded["rule"] == "hu-air-inside-body" and recorded["version"] == 1
    assert LungFieldRule.from_dict(recorded) == LungFieldRule()
    with pytest.raises(ConfigError, match="air_hu"):
        LungFieldRule(air_hu=100.0)
    with pytest.raises(ConfigError, match="dilate_mm"):
        LungFieldRule(dilate_mm=float("nan"))
    with pytest.raises(ConfigError, match="parameters"):
        LungFieldRule.from_dict({**recorded, "extra": 1})
    with pytest.raises(ConfigError, match="version"):
        LungFieldRule.from_dict({**recorded, "version": 2})
