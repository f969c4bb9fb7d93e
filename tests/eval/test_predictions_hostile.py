"""eval --predictions with records that are not what contract 4 says: one line each, never a
traceback, never a silent score (issue 21, items 11 and 13)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from support.evaluation import Slice, gt_as_predictions, write_dataset
from support.hostile import one_line_error, run_cli

from detect.errors import DetectError
from detect.eval import evaluate_predictions

SLICES = [
    Slice("A0001", "1", [((10, 10, 30, 30), "A")]),
    Slice("B0002", "1", [((5, 5, 25, 35), "B")]),
]


@pytest.fixture
def data(tmp_path: Path):
    return write_dataset(tmp_path / "data", SLICES)


def _records(data) -> list[dict]:
    return [p.to_json() for p in gt_as_predictions(data)]


def _eval(data, tmp_path: Path, records: object):
    path = tmp_path / "preds.json"  # "BIG" stands for 1e400: a number, parsed as inf
    path.write_text(json.dumps(records).replace('"BIG"', "1e400"))
    return run_cli("eval", "--predictions", path, "--data", data.root, "--out",
                   tmp_path / "eval", "--bootstrap", "0")


def test_the_good_records_score(data, tmp_path):
    done = _eval(data, tmp_path, _records(data))
    assert done.exit_code == 0, done.output


@pytest.mark.parametrize(("change", "expected"), [
    (lambda r: [1, 2], "expected a JSON object"),
    (lambda r: "A0001", "expected a JSON object"),
    (lambda r: None, "expected a JSON object"),
    (lambda r: {**r, "histology": [0.7, 0.1, 0.1, 0.1]}, "histology must be an object"),
    (lambda r: {**r, "histology": "A"}, "histology must be an object"),
    (lambda r: {**r, "histology": {"A": "nan", "B": 0.1}}, "in [0, 1]"),
    (lambda r: {**r, "histology": {"A": "BIG"}}, "in [0, 1]"),
    (lambda r: {**r, "histology": {"A": -0.5}}, "in [0, 1]"),
    (lambda r: {**r, "histology": {"A": [1]}}, "not a prediction record"),
    (lambda r: {**r, "xyxy": [30, 10, 10, 30]}, "x1 <= x2"),
    (lambda r: {**r, "xyxy": None, "bbox": [10, 10, -20, 20]}, "x1 <= x2"),
    (lambda r: {**r, "xyxy": [10, 30, 30, 10]}, "y1 <= y2"),
    (lambda r: {**r, "xyxy": ["nan", 10, 30, 30]}, "finite"),
    (lambda r: {**r, "xyxy": [10, 10, "BIG", 30]}, "finite"),
    (lambda r: {**r, "category_id": 1.5}, "category_id must be an integer"),
    (lambda r: {**r, "category_id": True}, "category_id must be an integer"),
    (lambda r: {**r, "score": "nan"}, "score must be in [0, 1]"),
], ids=["list", "string", "null", "histology-list", "histology-text", "histology-nan",
        "histology-inf", "histology-negative", "histology-value-list", "x-reversed",
        "negative-width", "y-reversed", "nan-corner", "inf-corner", "category-float",
        "category-bool", "score-nan"])
def test_a_record_that_is_not_contract_4_is_one_line(data, tmp_path, change, expected):
    records = _records(data)
    records[1] = change(records[1])
    line = one_line_error(_eval(data, tmp_path, records), "record 1", expected)
    assert "Traceback" not in line


@pytest.mark.parametrize(("change", "expected"), [
    ({"category_id": 7, "label": ""}, "category_id 7 is not a class"),
    ({"category_id": 7}, "category_id 7 is not a class"),
    ({"category_id": 2, "label": "A"}, "contradicts itself"),
])
def test_unknown_or_contradictory_categories_are_refused(data, tmp_path, change, expected):
    records = _records(data)
    records[0] = {**records[0], **change}
    one_line_error(_eval(data, tmp_path, records), "record 0", expected)


def test_a_tumour_dataset_takes_a_histology_detectors_letters(tmp_path):
    data = write_dataset(tmp_path / "tumour", [Slice("A0001", "1", [((10, 10, 30, 30),
                                                                        "tumor")])],
                         classes=("tumor",))
    record = gt_as_predictions(data)[0]
    as_letter = replace(record, label="G", category_id=4)  # a 4-class detector's G
    score = evaluate_predictions(data, "test", [as_letter], bootstrap=0).map50
    assert score == pytest.approx(1.0)
    with pytest.raises(DetectError, match="category_id 5"):
        evaluate_predictions(data, "test", [replace(record, category_id=5)], bootstrap=0)
