"""The operating point: chosen on a hand-made validation split whose lesion curve is known,
for each target; and recorded by training (the session's tiny run)."""

from __future__ import annotations

import json

import pytest
from support.evaluation import Slice, sop, write_dataset

from detect.errors import ConfigError
from detect.eval.operating import check_target, operating_point
from detect.lesions import LinkRule
from detect.predictions import Prediction


def _pred(sop: str, series: str, xyxy, score: float) -> Prediction:
    return Prediction(sop_instance_uid=sop, series_instance_uid=series, patient_id=series,
                      xyxy=xyxy, score=score, label="tumor", category_id=1)


@pytest.fixture()
def split(tmp_path):
    """Two scans, one true lesion each. Scan 1: the tumour at 0.9, false positives at 0.8,
    0.7 and 0.6. Scan 2: false positives at 0.85 and 0.5, its tumour at 0.4."""
    slices = [Slice("A0101", "s1", [((10, 10, 30, 30), "tumor")], split="val"),
              Slice("A0102", "s1", [((40, 40, 60, 60), "tumor")], split="val")]
    dataset = write_dataset(tmp_path / "data", slices, classes=("tumor",))
    one, two = sop("A0101", "s1", 0), sop("A0102", "s1", 1)
    far = [(70 + 8 * k, 70, 76 + 8 * k, 76) for k in range(4)]
    records = [_pred(one, "S1", (10, 10, 30, 30), 0.9), _pred(one, "S1", far[0], 0.8),
               _pred(one, "S1", far[1], 0.7), _pred(one, "S1", far[2], 0.6),
               _pred(two, "S2", far[0], 0.85), _pred(two, "S2", far[1], 0.5),
               _pred(two, "S2", (40, 40, 60, 60), 0.4)]
    return dataset, records


def test_the_highest_sensitivity_within_the_false_positive_budget(split):
    dataset, records = split
    # walking down: 0.9 hit (FP 0), 0.85 FP, 0.8 FP, 0.7 FP (3 FP / 2 scans = 1.5),
    # 0.6 FP (2.0), 0.5 FP (2.5 > 2: stop); sensitivity 0.5 all along, the 0.4 hit too
    # late. The budget is used: 0.6, not 0.9 (the weakest hit's score, no margin)
    point = operating_point(dataset, "val", records, target="sensitivity@2fp",
                            rule=LinkRule(), default=0.25)
    assert point["conf"] == pytest.approx(0.6) and point["sensitivity"] == 0.5
    assert point["fp_per_scan"] == 2.0 and point["lesions"] == 2 and point["scans"] == 2
    loose = operating_point(dataset, "val", records, target="sensitivity@3fp",
                            rule=LinkRule(), default=0.25)
    assert loose["conf"] == pytest.approx(0.4) and loose["sensitivity"] == 1.0
    assert loose["fp_per_scan"] == 2.5


def test_max_f1_and_the_default_when_nothing_is_found(split):
    dataset, records = split
    # F1 at 0.9: 2*1 / (2 + 0 + 1) = 0.667; at 0.4: 2*2 / (4 + 5 + 0) = 0.444
    point = operating_point(dataset, "val", records, target="max-f1", rule=LinkRule(),
                            default=0.25)
    assert point["conf"] == pytest.approx(0.9)
    none = operating_point(dataset, "val", [], target="max-f1", rule=LinkRule(), default=0.3)
    assert none["conf"] == 0.3 and "no prediction" in none["note"]


@pytest.mark.parametrize("target", ["sensitivity@0fp", "recall", "sensitivity@-1fp", ""])
def test_a_bad_target_is_one_line(target):
    with pytest.raises(ConfigError, match="--operating-point must be sensitivity@<N>fp"):
        check_target(target)


def test_training_records_the_operating_point(tiny_run):
    result, _ = tiny_run
    manifest = json.loads(result.model_json.read_text())
    point = manifest["operating_point"]
    assert point["target"] == "sensitivity@2fp" and point["split"] == "val"
    assert manifest["thresholds"]["conf"] == point["conf"] == result.metrics["conf"]
    assert manifest["postprocess"]["lesions"]["rule"] == "link-overlapping-slices"
    assert manifest["postprocess"]["lung_field"]["rule"] == "hu-air-inside-body"


def test_boxes_tied_with_the_first_one_over_the_budget_are_over_it_too():
    import numpy as np

    from detect.eval.operating import choose_point

    # two false positives at 0.5 take the rate from 1 to 3 per scan: 0.5 as a threshold
    # keeps both, so the point is 0.9, not the 0.5 the first of them reaches alone
    point = choose_point(np.array([np.inf, 0.9, 0.5, 0.5]), np.array([0.0, 0.0, 1.0, 3.0]),
                         np.array([0.0, 1.0, 1.0, 1.0]), target="sensitivity@2fp",
                         lesions=1, scans=1, default=0.25)
    assert point["conf"] == pytest.approx(0.9) and point["fp_per_scan"] == 0.0
    within = choose_point(np.array([np.inf, 0.9, 0.6, 0.5]), np.array([0.0, 0.0, 1.0, 3.0]),
                          np.array([0.0, 1.0, 1.0, 1.0]), target="sensitivity@2fp",
                          lesions=1, scans=1, default=0.25)
    assert within["conf"] == pytest.approx(0.6) and within["fp_per_scan"] == 1.0
