"""Histology metrics on hand-made confusion cases, worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from support.evaluation import Slice, prediction, write_dataset

from detect.eval import evaluate_predictions
from detect.eval.histology import roc_auc

BOX = (10.0, 10.0, 30.0, 30.0)
# truth (patient letter) -> what the detector's label says
PATIENTS = [("A0001", "A"), ("A0002", "A"), ("A0003", "G"), ("B0004", "B"), ("B0005", "A"),
            ("E0006", "A"), ("G0007", "G"), ("G0008", "G")]


@pytest.fixture
def confusion_case(tmp_path):
    dataset = write_dataset(tmp_path / "data",
                            [Slice(p, "1", [(BOX, p[0])]) for p, _ in PATIENTS])
    images = {i["patient_id"]: i for i in dataset.load_coco("test")["images"]}
    preds = []
    for patient, said in PATIENTS:
        truth = patient[0]
        # the head is right, confident for A/B/G, torn for the E patient
        probs = {k: 0.1 for k in "ABEG"}
        probs[truth] = 0.7
        if truth == "E":
            probs = {"A": 0.3, "B": 0.1, "E": 0.4, "G": 0.2}
        preds.append(prediction(images[patient], BOX, 0.9, said, histology=probs))
    return dataset, preds


def test_detector_letters_match_the_hand_computation(confusion_case):
    dataset, preds = confusion_case
    result = evaluate_predictions(dataset, "test", preds, bootstrap=0)
    detector = result.histology["detector"]
    # rows truth A, B, E, G; columns predicted, from PATIENTS
    matrix = [[2, 0, 0, 1],
              [1, 1, 0, 0],
              [1, 0, 0, 0],
              [0, 0, 0, 2]]
    recall = [2 / 3, 1 / 2, 0 / 1, 2 / 2]
    precision = [2 / 4, 1 / 1, None, 2 / 3]  # nothing predicted E
    f1 = [2 * p * r / (p + r) if p else 0.0 for p, r in zip(precision, recall)]
    for level in ("patient", "slice"):  # one box per patient: both levels agree
        section = detector[level]
        assert section["confusion"]["matrix"] == matrix
        assert section["accuracy"] == pytest.approx(5 / 8)
        assert section["balanced_accuracy"] == pytest.approx(sum(recall) / 4)
        assert section["macro_f1"] == pytest.approx(sum(f1) / 4)
    assert detector["patient"]["per_letter"]["E"] == {"n": 1, "correct": 0, "recall": 0.0}
    head = result.histology["head"]["patient"]
    assert head["balanced_accuracy"] == 1.0
    assert head["auc"]["E"]["auc"] == 1.0  # 0.4 for the E patient beats 0.1 for all others
    ci = evaluate_predictions(dataset, "test", preds, bootstrap=30).ci["metrics"]
    assert ci["patient_balanced_accuracy_detector"]["value"] == pytest.approx(sum(recall) / 4)
    assert ci["patient_balanced_accuracy_head"]["value"] == 1.0


def test_roc_auc_by_hand():
    # positives 0.9, 0.4 vs negatives 0.5, 0.4, 0.1: 0.9 beats all 3; 0.4 beats 0.1,
    # ties 0.4 (one half), loses to 0.5 -> (3 + 1.5) / 6
    scores = np.array([0.9, 0.4, 0.5, 0.4, 0.1])
    positive = np.array([True, True, False, False, False])
    assert roc_auc(positive, scores) == pytest.approx(4.5 / 6)


def test_patient_vote_is_score_weighted_and_head_vectors_are_averaged(tmp_path):
    dataset = write_dataset(tmp_path / "data", [Slice("A0001", "1", [(BOX, "A")]),
                                                Slice("A0001", "1", [(BOX, "A")]),
                                                Slice("A0001", "1", [(BOX, "A")])])
    images = dataset.load_coco("test")["images"]
    preds = [
        prediction(images[0], BOX, 0.9, "A", {"A": 0.2, "B": 0.0, "E": 0.0, "G": 0.8}),
        prediction(images[1], BOX, 0.3, "G", {"A": 0.9, "B": 0.0, "E": 0.0, "G": 0.1}),
        prediction(images[2], BOX, 0.3, "G", {"A": 0.9, "B": 0.0, "E": 0.0, "G": 0.1}),
        prediction(images[2], (40, 40, 50, 50), 0.2, "G"),  # below conf: ignored
    ]
    result = evaluate_predictions(dataset, "test", preds, bootstrap=0)
    # votes: A 0.9 vs G 0.3 + 0.3 -> A; head: mean A = (0.2 + 0.9 + 0.9) / 3 > G -> A
    assert result.histology["detector"]["patient"]["predictions"] == {"A0001": "A"}
    assert result.histology["head"]["patient"]["predictions"] == {"A0001": "A"}
    # per slice, the detector says G twice: slice-level accuracy 1/3
    assert result.histology["detector"]["slice"]["accuracy"] == pytest.approx(1 / 3)
    assert result.histology["head"]["slice"]["accuracy"] == pytest.approx(2 / 3)


def test_tumour_only_dataset_scores_every_record_as_tumour(tmp_path):
    slices = [Slice("A0001", "1", [(BOX, "tumor")]), Slice("G0002", "1", [(BOX, "tumor")])]
    dataset = write_dataset(tmp_path / "data", slices, classes=("tumor",))
    images = dataset.load_coco("test")["images"]
    preds = [prediction(images[0], BOX, 0.8, "A", {"A": 0.6, "B": 0.1, "E": 0.1, "G": 0.2}),
             prediction(images[1], BOX, 0.8, "tumor", {"A": 0.6, "B": 0.1, "E": 0.1,
                                                       "G": 0.2})]
    result = evaluate_predictions(dataset, "test", preds, bootstrap=0)
    assert result.map50 == pytest.approx(1.0, abs=1e-9)
    assert result.counts["predictions_unmapped_label"] == 0
    head = result.histology["head"]["patient"]
    assert head["confusion"]["matrix"][0] == [1, 0, 0, 0]  # A0001 -> A
    assert head["confusion"]["matrix"][3] == [1, 0, 0, 0]  # G0002 -> A (wrong)
    assert head["balanced_accuracy"] == pytest.approx((1 + 0) / 2)


def test_unknown_label_on_a_histology_dataset_is_unmapped(tmp_path):
    dataset = write_dataset(tmp_path / "data", [Slice("A0001", "1", [(BOX, "A")])])
    image = dataset.load_coco("test")["images"][0]
    result = evaluate_predictions(dataset, "test", [prediction(image, BOX, 0.9, "tumor")],
                                  bootstrap=0)
    assert result.counts["predictions_unmapped_label"] == 1
    assert result.map50 == 0.0  # no class: not in class-aware AP
    assert result.froc["hits"] == 1  # but found, class-agnostic
    assert result.histology["detector"]["available"] is False
