"""Linking slice boxes into 3D lesions: what links and what does not, independence of
input order, measurements in mm, several acquisitions at one position, the lone rule."""

from __future__ import annotations

import random

import pytest

from detect.errors import ConfigError
from detect.io.geometry import SeriesGeometry
from detect.lesions import LinkRule, SliceBox, lesion_rule, link_series

RULE = LinkRule()


def axial(slices: int, spacing: float = 5.0, pixel: float = 0.5,
          shift: dict[int, float] | None = None) -> SeriesGeometry:
    """An axial series; ``shift``: an x offset (mm) of some slices' origins."""
    shift = shift or {}
    origins = tuple((shift.get(k, 0.0), 0.0, spacing * k) for k in range(slices))
    return SeriesGeometry(tuple(spacing * k for k in range(slices)), spacing,
                          (pixel, pixel), origins)


def box(k: int, xyxy: tuple[float, float, float, float], score: float = 0.9) -> SliceBox:
    return SliceBox(f"sop-{k}", k, xyxy, score)


def groups(boxes, geometry=None, rule=RULE) -> set[frozenset[tuple[str, tuple]]]:
    linked = link_series(boxes, geometry, rule)
    return {frozenset((b.slice_key, b.xyxy) for b in lesion.boxes) for lesion in linked.lesions}


def test_overlapping_boxes_on_adjacent_slices_are_one_lesion():
    boxes = [box(3, (100, 100, 140, 140)), box(4, (104, 102, 146, 144)),
             box(5, (108, 104, 150, 150)), box(4, (300, 300, 320, 320))]
    linked = link_series(boxes, axial(10), RULE)
    assert [len(x.boxes) for x in linked.lesions] == [3, 1]
    tumour = linked.lesions[0]
    assert tumour.slice_indices == (3, 4, 5)
    assert tumour.indices == (0, 1, 2)
    assert tumour.diameter_mm == pytest.approx(46 * 0.5)  # the longer side of the largest box
    assert tumour.extent_mm == pytest.approx(3 * 5.0)     # 3 slices of 5 mm
    x1, y1, z1, x2, y2, z2 = tumour.box_mm
    assert (x1, x2) == pytest.approx((99.5 * 0.5, 149.5 * 0.5))
    assert (y1, y2) == pytest.approx((99.5 * 0.5, 149.5 * 0.5))
    assert (z1, z2) == pytest.approx((15.0 - 2.5, 25.0 + 2.5))
    assert linked.linked_in == "mm"


def test_a_gap_of_one_slice_is_bridged_and_two_are_not():
    two = [box(2, (10, 10, 50, 50)), box(4, (10, 10, 50, 50))]
    assert len(groups(two, axial(10))) == 1
    far = [box(2, (10, 10, 50, 50)), box(5, (10, 10, 50, 50))]
    assert len(groups(far, axial(10))) == 2
    assert len(groups(far, axial(10), LinkRule(max_gap=2))) == 1


def test_boxes_that_barely_overlap_stay_apart():
    apart = [box(2, (0, 0, 40, 40)), box(3, (36, 36, 76, 76))]  # IoU 0.005
    assert len(groups(apart, axial(10))) == 2


def test_patient_coordinates_not_pixels_decide():
    """The same pixels on a slice whose origin moved 30 mm are another place."""
    boxes = [box(2, (10, 10, 50, 50)), box(3, (10, 10, 50, 50))]
    assert len(groups(boxes, axial(10))) == 1
    assert len(groups(boxes, axial(10, shift={3: 30.0}))) == 2
    assert len(groups(boxes, None)) == 1  # without geometry: slice index and pixels


def test_input_order_does_not_matter():
    rng = random.Random(0)
    boxes = [box(k, (10 + 2 * k, 10, 50 + 2 * k, 50), 0.5 + 0.01 * k) for k in range(8)]
    boxes += [box(k, (200, 200, 230, 230), 0.3) for k in (1, 2, 6)]
    expected = groups(boxes, axial(10))
    for _ in range(5):
        rng.shuffle(boxes)
        assert groups(boxes, axial(10)) == expected
    assert len(expected) == 3  # the chain, slices 1-2, slice 6


def test_acquisitions_repeating_positions_link_like_neighbours():
    positions = (0.0, 0.0, 5.0, 5.0, 10.0, 10.0)
    geometry = SeriesGeometry(positions, 5.0, (0.7, 0.7),
                              tuple((0.0, 0.0, z) for z in positions))
    boxes = [box(k, (20, 20, 60, 60)) for k in range(6)]
    (lesion,) = link_series(boxes, geometry, RULE).lesions
    assert lesion.extent_mm == pytest.approx(15.0)


def test_score_is_the_best_box_and_lesions_come_by_score():
    boxes = [box(1, (0, 0, 20, 20), 0.3), box(2, (0, 0, 20, 20), 0.8),
             box(5, (100, 100, 120, 120), 0.5)]
    linked = link_series(boxes, None, RULE)
    assert [x.score for x in linked.lesions] == [0.8, 0.5]
    assert linked.linked_in == "slice-index"
    assert linked.lesions[0].diameter_mm is None and linked.lesions[0].box_mm is None


def test_the_lone_rule_drops_single_low_boxes_only():
    boxes = [box(1, (0, 0, 20, 20), 0.3), box(2, (0, 0, 20, 20), 0.3),
             box(6, (100, 100, 120, 120), 0.3), box(8, (300, 300, 320, 320), 0.7)]
    linked = link_series(boxes, axial(10), LinkRule(lone_min_score=0.5))
    assert sorted(len(x.boxes) for x in linked.lesions) == [1, 2]
    assert [x.boxes[0].slice_index for x in linked.dropped] == [6]


def test_rule_round_trips_and_checks_its_values():
    assert LinkRule.from_dict(lesion_rule()) == RULE
    assert lesion_rule()["score"] == "max"
    for bad in ({"iou": 0.0}, {"max_gap": -1}, {"max_gap": 1.5}, {"score": "mean"},
                {"lone_min_score": 2.0}):
        with pytest.raises(ConfigError):
            LinkRule(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="parameters"):
        LinkRule.from_dict({**lesion_rule(), "gap": 1})
