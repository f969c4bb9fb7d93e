"""COCO AP: pycocotools vs an independent implementation (faster-coco-eval's C++
COCOeval_faster), and the bootstrap's own AP vs pycocotools on the full set."""

from __future__ import annotations

import numpy as np
import pytest
from support.evaluation import Slice, write_dataset

from detect.eval import evaluate_predictions
from detect.eval.coco import (
    IOU_50_95,
    ap_tables,
    coco_gt,
    coco_results,
    cocoeval_precision,
    mean_ap,
    per_class_ap,
)
from detect.eval.truth import assign_predictions, load_truth
from detect.predictions import Prediction

LETTERS = "ABEG"


def _random_case(tmp_path, seed: int = 7):
    """~30 slices of 10 patients with 0-2 boxes; imperfect predictions: jittered true
    boxes with some wrong letters, some misses, random false positives, random scores."""
    rng = np.random.default_rng(seed)
    slices = []
    for p in range(10):
        patient = f"{LETTERS[p % 4]}{p + 1:04d}"
        for _ in range(int(rng.integers(2, 5))):
            boxes = []
            for _ in range(int(rng.integers(0, 3))):
                x, y = rng.uniform(0, 40, 2)
                w, h = rng.uniform(6, 20, 2)
                boxes.append(((x, y, min(x + w, 64), min(y + h, 64)), patient[0]))
            slices.append(Slice(patient, str(p % 2), boxes))
    dataset = write_dataset(tmp_path / "data", slices)
    coco = dataset.load_coco("test")
    images = {i["id"]: i for i in coco["images"]}
    preds = []

    def add(image, xyxy, letter):
        preds.append(Prediction(image["sop_instance_uid"], image["series_instance_uid"],
                                image["patient_id"], xyxy, float(rng.uniform(0.05, 1.0)),
                                letter, LETTERS.index(letter) + 1))

    for ann in coco["annotations"]:
        if rng.random() < 0.2:
            continue  # missed
        x, y, w, h = ann["bbox"]
        dx, dy = rng.normal(0, 0.2 * w), rng.normal(0, 0.2 * h)
        letter = LETTERS[ann["category_id"] - 1] if rng.random() < 0.8 else rng.choice(
            list(LETTERS))
        add(images[ann["image_id"]], (x + dx, y + dy, x + dx + w, y + dy + h), letter)
    for image in coco["images"]:
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, 50, 2)
            add(image, (x, y, x + rng.uniform(4, 14), y + rng.uniform(4, 14)),
                rng.choice(list(LETTERS)))
    return dataset, preds


def _faster_coco_eval(gt: dict, results: list[dict], iou_thresholds=None) -> np.ndarray:
    faster = pytest.importorskip("faster_coco_eval")
    coco = faster.COCO(gt)
    evaluator = faster.COCOeval_faster(coco, coco.loadRes(results), iouType="bbox")
    if iou_thresholds is not None:
        evaluator.params.iouThrs = np.asarray(iou_thresholds, dtype=float)
    evaluator.evaluate()
    evaluator.accumulate()
    return np.asarray(evaluator.eval["precision"])[:, :, :, 0, -1]


def test_pycocotools_and_faster_coco_eval_agree(tmp_path):
    dataset, preds = _random_case(tmp_path)
    truth = load_truth(dataset, "test")
    assignment = assign_predictions(truth, preds)
    gt, results = coco_gt(truth), coco_results(assignment.by_image)
    ours = cocoeval_precision(gt, results, IOU_50_95)
    theirs = _faster_coco_eval(gt, results)
    assert 0.1 < mean_ap(ours[:1]) < 0.95  # imperfect, so the comparison means something
    assert mean_ap(ours[:1]) == pytest.approx(mean_ap(theirs[:1]), abs=1e-3)
    assert mean_ap(ours) == pytest.approx(mean_ap(theirs), abs=1e-3)
    ours10 = cocoeval_precision(gt, results, [0.1])
    assert mean_ap(ours10) == pytest.approx(mean_ap(_faster_coco_eval(gt, results, [0.1])),
                                            abs=1e-3)
    result = evaluate_predictions(dataset, "test", preds, bootstrap=0)
    assert result.map50 == pytest.approx(mean_ap(theirs[:1]), abs=1e-3)


def test_bootstrap_ap_equals_pycocotools_on_the_full_set(tmp_path):
    dataset, preds = _random_case(tmp_path, seed=11)
    truth = load_truth(dataset, "test")
    by_image = assign_predictions(truth, preds).by_image
    gt, results = coco_gt(truth), coco_results(by_image)
    for threshold in (0.5, 0.1):
        reference = per_class_ap(cocoeval_precision(gt, results, [threshold]))
        fast = [t.ap() for t in ap_tables(truth, by_image, threshold, truth.patients)]
        for ref, mine in zip(reference, fast):
            assert (ref is None and np.isnan(mine)) or mine == pytest.approx(ref, abs=1e-6)


def test_bootstrap_is_seeded_and_brackets_the_estimate(tmp_path):
    dataset, preds = _random_case(tmp_path, seed=3)
    first = evaluate_predictions(dataset, "test", preds, bootstrap=200, seed=5).ci["metrics"]
    again = evaluate_predictions(dataset, "test", preds, bootstrap=200, seed=5).ci["metrics"]
    other = evaluate_predictions(dataset, "test", preds, bootstrap=200, seed=6).ci["metrics"]
    assert first == again
    assert first != other
    for name in ("map50", "ap10", "froc_mean", "patient_sensitivity"):
        entry = first[name]
        assert entry["low"] <= entry["high"]
        assert entry["replicates"] == 200
    assert first["map50"]["low"] < first["map50"]["value"] < first["map50"]["high"]


def test_no_predictions_scores_zero(tmp_path):
    dataset, _ = _random_case(tmp_path)
    result = evaluate_predictions(dataset, "test", [], bootstrap=10)
    assert (result.map50, result.ap10, result.froc_mean) == (0.0, 0.0, 0.0)
    assert result.patient_sensitivity == 0.0
