"""tools/real_folds.py: the operating point of the real-CT protocol, chosen on the pooled
whole-series lesion curve of several held-out patients, on a case worked out by hand."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

from detect.eval.series import AnnotationBoxes, PredictedSeries, PredictedSlice
from detect.predictions import Prediction

ROOT = Path(__file__).resolve().parents[2]
TUMOUR = (100.0, 100.0, 140.0, 140.0)
FAR = (300.0, 300.0, 330.0, 330.0)
ELSEWHERE = (200.0, 20.0, 230.0, 50.0)


@pytest.fixture(scope="module")
def folds() -> ModuleType:
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ROOT / "tools"))
        return importlib.import_module("real_folds")


def _series(patient: str, boxed: tuple[int, ...], found: list[tuple[int, tuple, float]]
            ) -> PredictedSeries:
    slices = [PredictedSlice(patient, f"S{patient}", f"{patient}.{i}", i) for i in range(10)]
    boxes = {f"{patient}.{i}": (TUMOUR,) for i in boxed}
    predictions = [Prediction(sop_instance_uid=f"{patient}.{i}",
                              series_instance_uid=f"S{patient}", patient_id=patient,
                              xyxy=box, score=score, label="tumor", category_id=1)
                   for i, box, score in found]
    return PredictedSeries(slices, predictions, AnnotationBoxes(boxes))


# Pooled, 2 series, 2 true lesions; down the scores (FP lesions per series, sensitivity):
# 0.9 B hit (0, 0.5); 0.85 E FP (0.5); 0.8 B FP (1.0); 0.7 B FP, slice 0, not linked to
# slice 9 (1.5); 0.6 E hit (1.5, 1.0); 0.5 E FP elsewhere (2.0).
B = _series("B0001", (4, 5), [(4, TUMOUR, 0.9), (9, FAR, 0.8), (0, FAR, 0.7)])
E = _series("E0001", (2,), [(8, FAR, 0.85), (2, TUMOUR, 0.6), (6, ELSEWHERE, 0.5)])


def test_pooled_series_hold_both_patients(folds) -> None:
    both = folds.pooled([B, E])
    assert len(both.slices) == 20 and len(both.predictions) == 6
    assert set(both.annotations.boxes) == {"B0001.4", "B0001.5", "E0001.2"}
    lesions = both.score(conf=0.5).lesions
    assert lesions["lesions"] == 2 and lesions["scans"] == 2


@pytest.mark.parametrize(("target", "conf", "sensitivity", "fp"), [
    ("sensitivity@2fp", 0.5, 1.0, 2.0),   # every point stays <= 2 FP per series: the last
    ("sensitivity@1fp", 0.8, 0.5, 1.0),   # 1.5 FP at 0.7 ends the walk: the point before it
    ("max-f1", 0.9, 0.5, 0.0),            # F1 = 2 / (2 + 0 + 1) at 0.9 beats 4 / (4 + 3 + 0)
])
def test_threshold_chosen_on_the_pooled_curve(folds, target, conf, sensitivity, fp) -> None:
    point = folds.choose_conf([B, E], ["B0001", "E0001"], target=target)
    assert point["conf"] == pytest.approx(conf)
    assert point["sensitivity"] == pytest.approx(sensitivity)
    assert point["fp_per_scan"] == pytest.approx(fp)
    assert point["target"] == target and "B0001, E0001" in point["split"]


def test_one_patient_alone_gives_its_own_point(folds) -> None:
    # E alone: FP at 0.85 (1 per series), hit at 0.6 (1 FP), FP at 0.5 (2): sensitivity 1
    # at <= 2 FP, the budget used down to 0.5
    point = folds.choose_conf([E], ["E0001"], target="sensitivity@2fp")
    assert point["conf"] == pytest.approx(0.5) and point["fp_per_scan"] == pytest.approx(2.0)
    assert point["sensitivity"] == 1.0
    # nothing predicted: the default threshold is kept, and the record says why
    empty = PredictedSeries(E.slices, [], E.annotations)
    kept = folds.choose_conf([empty], ["E0001"], default=0.25)
    assert kept["conf"] == 0.25 and "no prediction" in kept["note"]
