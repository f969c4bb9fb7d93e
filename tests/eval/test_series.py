"""Scoring every slice of whole series (detect.eval.series) on a case worked out by hand."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from detect.errors import DetectError
from detect.eval.series import (
    AnnotationBoxes,
    PredictedSlice,
    near_annotation_ignored,
    read_annotation_boxes,
    read_slices_csv,
    score_series,
)
from detect.io.voc import VocObject, voc_xml_bytes
from detect.predictions import Prediction

TUMOUR = (100.0, 100.0, 140.0, 140.0)
FAR = (300.0, 300.0, 330.0, 330.0)
# Patient B0001: series S1 (slices 0-9, boxes on 4 and 5), series S2 (slices 0-4, no box).
SLICES = [PredictedSlice("B0001", "S1", f"s1.{i}", i) for i in range(10)] + [
    PredictedSlice("B0001", "S2", f"s2.{i}", i) for i in range(5)
]
BOXES = AnnotationBoxes({"s1.4": (TUMOUR,), "s1.5": (TUMOUR,)})


def pred(sop: str, box: tuple[float, float, float, float], score: float,
         series: str = "S1") -> Prediction:
    return Prediction(sop_instance_uid=sop, series_instance_uid=series, patient_id="B0001",
                      xyxy=box, score=score, label="tumor", category_id=1)


# (what it is under the default rule: near_slices=2, IoU 0.1)
PREDICTIONS = [
    pred("s1.4", TUMOUR, 0.9),          # hit
    pred("s1.6", TUMOUR, 0.8),          # unannotated, 1 slice from s1.5, overlaps: ignored
    pred("s1.9", TUMOUR, 0.7),          # unannotated, 4 slices away: false positive
    pred("s2.1", FAR, 0.6, "S2"),       # false positive in the other series
    pred("s1.5", TUMOUR, 0.5),          # hit
    pred("s1.3", FAR, 0.4),             # near, but not overlapping: false positive
]


def test_near_annotation_rule_ignores_only_overlapping_neighbours() -> None:
    kept, ignored = near_annotation_ignored(SLICES, BOXES.boxes, PREDICTIONS,
                                            near_slices=2, iou=0.1)
    assert [p.sop_instance_uid for p in ignored] == ["s1.6"]
    assert len(kept) == 5
    kept, ignored = near_annotation_ignored(SLICES, BOXES.boxes, PREDICTIONS,
                                            near_slices=0, iou=0.1)
    assert ignored == [] and len(kept) == 6


def test_score_series_by_hand() -> None:
    score = score_series(SLICES, BOXES, PREDICTIONS, conf=0.45, near_slices=2)
    # 2 series, 2 lesions. In score order: hit (0,1/2); FP s1.9 (1/2 FP/series);
    # FP s2.1 (2/2); hit s1.5 (1, 2/2); FP s1.3 (3/2).
    assert score.counts["series"] == 2 and score.counts["boxes"] == 2
    assert score.counts["slices"] == 15 and score.counts["annotated_slices"] == 2
    assert score.counts["ignored_near_annotation"] == 1
    assert score.sensitivity_at(0.25) == pytest.approx(0.5)
    assert score.sensitivity_at(1.0) == pytest.approx(1.0)
    assert score.sensitivity_at(8.0) == pytest.approx(1.0)
    # On the annotated slices alone both detections are hits: AP50 = 1.
    assert score.ap50_annotated == pytest.approx(1.0)
    # Over all slices the FPs at 0.7 and 0.6 come before the second hit: precision at
    # recall 1 is 2/4, at recall 0.5 it is 1 (COCO 101-point interpolation).
    expected = (51 * 1.0 + 50 * 0.5) / 101
    assert score.ap50_all_slices == pytest.approx(expected, abs=1e-6)
    assert score.patients_found == {"B0001": True}


def test_strict_count_and_operating_threshold() -> None:
    strict = score_series(SLICES, BOXES, PREDICTIONS, conf=0.95, near_slices=0)
    # s1.6 is now an FP at 0.8: the second hit comes after 3 FPs (1.5 FP/series).
    assert strict.sensitivity_at(1.0) == pytest.approx(0.5)
    assert strict.sensitivity_at(2.0) == pytest.approx(1.0)
    assert strict.patients_found == {"B0001": False}  # no hit scores >= 0.95


def test_unpredicted_boxes_and_stray_predictions_are_counted() -> None:
    boxes = AnnotationBoxes({**BOXES.boxes, "other.sop": (TUMOUR,)})
    stray = [*PREDICTIONS, pred("not.predicted", TUMOUR, 0.3)]
    score = score_series(SLICES, boxes, stray)
    assert score.counts["boxes_on_unpredicted_slices"] == 1
    assert score.counts["predictions_outside_slices"] == 1
    assert score.counts["boxes"] == 2


def _xml(path: Path, name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(voc_xml_bytes([VocObject(name=name, xyxy=TUMOUR)], 512, 512, 1))


def test_read_annotation_boxes_skips_and_lists_bad_files(tmp_path: Path) -> None:
    _xml(tmp_path / "B0001" / "s1.4.xml", "B")
    _xml(tmp_path / "B0001" / "s1.5.xml", "q")  # not a histology letter
    (tmp_path / "B0001" / "s1.6.xml").write_text("<annotation><object>")  # malformed
    (tmp_path / "B0001" / "notes.txt").write_text("not an annotation")
    found = read_annotation_boxes(tmp_path)
    assert found.boxes == {"s1.4": (TUMOUR,)}
    kinds = sorted(detail.split(":")[0] for _, detail in found.skipped)
    assert kinds == ["malformed-xml", "unknown-label"]


def test_read_slices_csv(tmp_path: Path) -> None:
    path = tmp_path / "slices.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["patient_id", "series_instance_uid",
                                         "sop_instance_uid", "slice_index", "detections"])
        writer.writeheader()
        writer.writerow({"patient_id": "B0001", "series_instance_uid": "S1",
                         "sop_instance_uid": "s1.0", "slice_index": "0", "detections": "0"})
    assert read_slices_csv(path) == [PredictedSlice("B0001", "S1", "s1.0", 0)]
    (tmp_path / "bad.csv").write_text("patient_id,slice_index\nB0001,x\n")
    with pytest.raises(DetectError, match="columns"):
        read_slices_csv(tmp_path / "bad.csv")
    with pytest.raises(DetectError, match="cannot read"):
        read_slices_csv(tmp_path / "missing.csv")
