"""Lesion-level FROC and per-lesion sensitivity (detect.eval.lesions), worked out by hand
on whole series and on a dataset split."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from support.evaluation import gt_as_predictions, write_dataset

from detect.eval import evaluate_predictions
from detect.eval.froc import FROC_RATES
from detect.eval.series import AnnotationBoxes, PredictedSlice, score_series
from detect.lesions import LinkRule
from detect.predictions import Prediction

TUMOUR = (100.0, 100.0, 140.0, 140.0)
FAR = (300.0, 300.0, 330.0, 330.0)
# Patient B0001: series S1 (slices 0-9, 5 mm apart; boxes on 4 and 5: one true lesion),
# series S2 (slices 0-4, no box).
SLICES = [PredictedSlice("B0001", "S1", f"s1.{i}", i, position_mm=5.0 * i) for i in range(10)]
SLICES += [PredictedSlice("B0001", "S2", f"s2.{i}", i, position_mm=5.0 * i) for i in range(5)]
BOXES = AnnotationBoxes({"s1.4": (TUMOUR,), "s1.5": (TUMOUR,)})


def pred(sop: str, box: tuple[float, float, float, float], score: float,
         series: str = "S1") -> Prediction:
    return Prediction(sop_instance_uid=sop, series_instance_uid=series, patient_id="B0001",
                      xyxy=box, score=score, label="tumor", category_id=1)


# As lesions: s1.4 + s1.5 + s1.6 one lesion (0.9, a hit); s1.9 (3 slices on: its own
# lesion, 0.7, FP); s2.1 (0.6, FP); s1.3 (no overlap with the tumour: 0.4, FP).
PREDICTIONS = [
    pred("s1.4", TUMOUR, 0.9),
    pred("s1.6", TUMOUR, 0.8),   # on its own an ignored box (unannotated, beside s1.5)
    pred("s1.9", TUMOUR, 0.7),
    pred("s2.1", FAR, 0.6, "S2"),
    pred("s1.5", TUMOUR, 0.5),
    pred("s1.3", FAR, 0.4),
]


def test_lesion_froc_by_hand():
    lesions = score_series(SLICES, BOXES, PREDICTIONS, conf=0.45).lesions
    assert lesions["linked_in"] == "mm"
    assert (lesions["scans"], lesions["lesions"], lesions["predicted_lesions"]) == (2, 1, 4)
    assert (lesions["hits"], lesions["false_positives"]) == (1, 3)
    # the hit comes first (0.9): sensitivity 1 at 0 FP, at every rate
    assert lesions["sensitivity"] == [1.0] * len(FROC_RATES)
    assert lesions["sensitivity_at_conf"] == 1.0
    assert lesions["false_positives_at_conf"] == 2  # 0.7 and 0.6; 0.4 is under conf
    assert lesions["predicted_lesions_at_conf"] == 3
    assert lesions["per_patient"] == {"B0001": {"lesions": 1, "found": 1}}
    slice_level = score_series(SLICES, BOXES, PREDICTIONS, conf=0.45)
    assert slice_level.sensitivity_at(0.25) == pytest.approx(0.5)  # two boxes, one early


def test_a_lesion_of_ignored_boxes_counts_neither_way():
    lesions = score_series(SLICES, BOXES, [pred("s1.6", TUMOUR, 0.8)]).lesions
    assert (lesions["predicted_lesions"], lesions["ignored"]) == (1, 1)
    assert lesions["false_positives"] == lesions["hits"] == 0


def test_positions_in_mm_decide_adjacency():
    """30 mm between slices 5 and 6: in mm s1.6 is no neighbour of s1.5; by index it is."""
    moved = [replace(s, position_mm=s.position_mm + (25.0 if s.series_instance_uid == "S1"
                                                     and s.slice_index >= 6 else 0.0))
             for s in SLICES]
    in_mm = score_series(moved, BOXES, PREDICTIONS).lesions
    by_index = score_series([replace(s, position_mm=None) for s in SLICES], BOXES,
                            PREDICTIONS).lesions
    assert (in_mm["linked_in"], by_index["linked_in"]) == ("mm", "slice-index")
    assert (in_mm["predicted_lesions"], by_index["predicted_lesions"]) == (5, 4)
    assert in_mm["ignored"] == 1  # s1.6 alone: ignored, not a false positive


def test_the_lone_rule_drops_single_low_boxes_before_matching():
    rule = LinkRule(lone_min_score=0.65)
    lesions = score_series(SLICES, BOXES, PREDICTIONS, link=rule).lesions
    assert lesions["dropped_lone"] == 2  # s2.1 (0.6) and s1.3 (0.4)
    assert (lesions["hits"], lesions["false_positives"]) == (1, 1)
    assert lesions["link"]["lone_min_score"] == 0.65


def test_input_order_does_not_matter():
    expected = score_series(SLICES, BOXES, PREDICTIONS).lesions
    shuffled = list(PREDICTIONS)
    random.Random(1).shuffle(shuffled)
    assert score_series(SLICES, BOXES, shuffled).lesions == expected


def test_a_dataset_split_links_by_slice_index(tmp_path):
    from support.evaluation import Slice

    slices = [
        Slice("A0001", "1", [((10, 10, 30, 30), "A")]),
        Slice("A0001", "1", [((12, 12, 32, 30), "A")]),  # the next slice: the same lesion
        Slice("A0001", "1"),
        Slice("B0002", "1", [((5, 5, 25, 35), "B"), ((40, 8, 52, 20), "B")]),  # two lesions
        Slice("G0004", "7", [((8, 40, 24, 56), "G")]),
        Slice("G0004", "8", []),
    ]
    dataset = write_dataset(tmp_path / "data", slices)
    perfect = evaluate_predictions(dataset, "test", gt_as_predictions(dataset), bootstrap=0)
    lesions = perfect.lesions
    assert lesions["linked_in"] == "slice-index"
    assert (lesions["lesions"], lesions["hits"], lesions["false_positives"]) == (4, 4, 0)
    assert lesions["scans"] == 4 and lesions["sensitivity"] == [1.0] * len(FROC_RATES)
    assert perfect.froc["lesions"] == 5  # slice level: one lesion per box
    empty = evaluate_predictions(dataset, "test", [], bootstrap=0).lesions
    assert empty["sensitivity_at_conf"] == 0.0 and empty["predicted_lesions"] == 0
    assert "lesions" in perfect.to_dict()


def test_weak_chains_do_not_lend_a_tumour_a_false_positive_score():
    """A strong false positive (0.9) three slices from a weak tumour box (0.3), joined at
    0.05 by a chain of weak boxes. At 0.5 only the false positive is a lesion: the tumour
    is missed, not hit with the false positive's score; at 0.05 the join hides the false
    positive, which must not lift the sensitivity at the lowest rates."""
    steps = [(5, TUMOUR, 0.3), (6, (110.0, 110.0, 150.0, 150.0), 0.05),
             (7, (120.0, 120.0, 160.0, 160.0), 0.05), (8, (130.0, 130.0, 170.0, 170.0), 0.9)]
    chain = [pred(f"s1.{k}", box, score) for k, box, score in steps]
    at_half = score_series(SLICES, BOXES, chain, conf=0.5).lesions
    assert (at_half["found_at_conf"], at_half["false_positives_at_conf"]) == (0, 1)
    low = score_series(SLICES, BOXES, chain, conf=0.05).lesions
    assert (low["found_at_conf"], low["false_positives_at_conf"]) == (1, 0)
    assert low["predicted_lesions_at_conf"] == 1
    # FP per scan: 0.5 from 0.9 down to 0.3 (where the tumour is hit), 0 from 0.05
    assert low["curve"]["fp_per_scan"] == [0.0, 0.5, 0.5, 0.0]
    assert low["sensitivity"][:2] == [0.0, 0.0]  # 1/8 and 1/4 FP per scan
    assert low["sensitivity"][2:] == [1.0] * (len(FROC_RATES) - 2)
