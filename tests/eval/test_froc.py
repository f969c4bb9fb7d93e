"""FROC and per-patient sensitivity on a case small enough to work out by hand."""

from __future__ import annotations

import pytest
from support.evaluation import Slice, prediction, write_dataset

from detect.boxes import iou
from detect.eval import evaluate_predictions
from detect.eval.froc import FROC_RATES

L1, L2, L3, L4 = (10, 10, 20, 20), (30, 30, 40, 40), (10, 10, 20, 20), (40, 40, 50, 50)
# 2 scans (one series per patient), 4 lesions; slice 5 has no lesion.
SLICES = [
    Slice("A0001", "1", [(L1, "A")]),  # slice 0
    Slice("A0001", "1", [(L2, "A")]),  # slice 1
    Slice("G0002", "1", [(L3, "G")]),  # slice 2
    Slice("G0002", "1", [(L4, "G")]),  # slice 3
    Slice("G0002", "1"),  # slice 4
]
FAR = (50, 2, 60, 8)
NEAR_MISS_L4 = (49, 40, 59, 50)  # overlaps L4 by 1 x 10 px: IoU 10 / 190 < 0.1
DUPLICATE_L1 = (12, 10, 22, 20)
# (slice, box, score, what it is)
DETECTIONS = [
    (0, L1, 0.95, "hit L1"),
    (4, FAR, 0.90, "FP"),
    (2, L3, 0.85, "hit L3"),
    (0, DUPLICATE_L1, 0.80, "duplicate of L1: neither hit nor FP"),
    (1, FAR, 0.70, "FP"),
    (3, FAR, 0.60, "FP"),
    (4, (2, 2, 8, 8), 0.55, "FP"),
    (1, L2, 0.50, "hit L2"),
    (0, FAR, 0.40, "FP"),
    (3, NEAR_MISS_L4, 0.30, "FP (IoU with L4 below 0.1)"),
]


def _hand_froc() -> tuple[list[float], float]:
    # Operating points (FP/scan, sensitivity) after each detection, worked out by hand:
    # 2 scans, 4 lesions.
    points = [
        (0 / 2, 0 / 4),  # nothing detected
        (0 / 2, 1 / 4),  # 0.95 hit L1
        (1 / 2, 1 / 4),  # 0.90 FP
        (1 / 2, 2 / 4),  # 0.85 hit L3
        (1 / 2, 2 / 4),  # 0.80 duplicate: unchanged
        (2 / 2, 2 / 4),  # 0.70 FP
        (3 / 2, 2 / 4),  # 0.60 FP
        (4 / 2, 2 / 4),  # 0.55 FP
        (4 / 2, 3 / 4),  # 0.50 hit L2
        (5 / 2, 3 / 4),  # 0.40 FP
        (6 / 2, 3 / 4),  # 0.30 FP
    ]
    at_rates = [max(s for f, s in points if f <= rate) for rate in FROC_RATES]
    return at_rates, sum(at_rates) / len(at_rates)


@pytest.fixture
def case(tmp_path):
    dataset = write_dataset(tmp_path / "data", SLICES)
    images = dataset.load_coco("test")["images"]
    preds = [prediction(images[i], box, score, "A") for i, box, score, _ in DETECTIONS]
    return dataset, preds


def test_near_miss_is_below_the_hit_iou():
    assert iou(NEAR_MISS_L4, L4) == pytest.approx(10 / 190)
    assert iou(DUPLICATE_L1, L1) >= 0.1


def test_froc_matches_the_hand_worked_values(case):
    dataset, preds = case
    result = evaluate_predictions(dataset, "test", preds, bootstrap=0)
    expected, mean = _hand_froc()
    # the duplicate matters: counted as an FP, 2 FP/scan would read 2/4, not 3/4
    assert expected == [1 / 4, 1 / 4, 2 / 4, 2 / 4, 3 / 4, 3 / 4, 3 / 4]
    assert result.froc["sensitivity"] == pytest.approx(expected)
    assert result.froc_mean == pytest.approx(mean)
    assert (result.froc["scans"], result.froc["lesions"]) == (2, 4)
    assert (result.froc["hits"], result.froc["false_positives"],
            result.froc["duplicates"]) == (3, 6, 1)


def test_froc_does_not_depend_on_record_order(case):
    dataset, preds = case
    forward = evaluate_predictions(dataset, "test", preds, bootstrap=0)
    backward = evaluate_predictions(dataset, "test", preds[::-1], bootstrap=0)
    assert forward.froc["sensitivity"] == backward.froc["sensitivity"]


def test_per_patient_sensitivity_at_the_operating_threshold(case):
    dataset, preds = case
    # A0001 is hit at 0.95 and 0.50; G0002 only at 0.85 (L4 is never hit)
    for conf, found in ((0.25, {"A0001": True, "G0002": True}),
                        (0.9, {"A0001": True, "G0002": False}),
                        (0.99, {"A0001": False, "G0002": False})):
        result = evaluate_predictions(dataset, "test", preds, bootstrap=0, conf=conf)
        assert result.per_patient["patients"] == found
        assert result.patient_sensitivity == sum(found.values()) / len(found)
        missed = {tuple(m["xyxy"]) for m in result.gallery["missed"]}
        assert tuple(float(v) for v in L4) in missed


def test_a_scan_without_detections_still_counts(tmp_path):
    slices = [*SLICES, Slice("B0003", "1")]  # a third scan, no lesion, no detection
    dataset = write_dataset(tmp_path / "data", slices)
    images = dataset.load_coco("test")["images"]
    preds = [prediction(images[0], L1, 0.9), prediction(images[4], FAR, 0.8),
             prediction(images[2], L3, 0.7)]
    result = evaluate_predictions(dataset, "test", preds, bootstrap=0)
    assert result.froc["scans"] == 3
    # 1 FP over 3 scans = 1/3 FP/scan: L3's hit comes after it, so at 1/4 only L1 counts
    assert result.froc["sensitivity"][:3] == pytest.approx([1 / 4, 1 / 4, 2 / 4])
