"""JSON a user hands us (dataset.json, predictions.json): deep nesting, NaN, oversize and
garbage are one-line refusals at the command line, never a RecursionError traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.evaluation import Slice, gt_as_predictions, write_dataset
from typer.testing import CliRunner

from detect.cli import app
from detect.errors import DetectError
from detect.io.jsonfile import read_json
from detect.predictions import write_predictions

DEEP = "[" * 100_000 + "]" * 100_000


def _eval(predictions: Path, data: Path, out: Path) -> list[str]:
    result = CliRunner().invoke(app, ["eval", "--predictions", str(predictions), "--data",
                                      str(data), "--out", str(out), "--bootstrap", "0"])
    assert result.exit_code == 1, result.output
    return result.output.strip().splitlines()


@pytest.mark.parametrize(
    ("text", "expected"),
    [(DEEP, "predictions file is nested deeper than 16 levels"),
     ('[{"score": NaN}]', "NaN is not a JSON number"),
     ("\xff\xfe", "unreadable predictions file"),
     ("{not json", "unreadable predictions file")],
    ids=["deep", "nan", "not-utf8", "not-json"],
)
def test_hostile_predictions_file_is_one_line(tmp_path, text, expected):
    data = write_dataset(tmp_path / "data", [Slice("A0100", "1", [((10, 10, 30, 30), "A")])])
    path = tmp_path / "predictions.json"
    path.write_bytes(text.encode("latin-1"))
    lines = _eval(path, data.root, tmp_path / "eval")
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines


@pytest.mark.parametrize(
    ("edit", "expected"),
    [(lambda manifest: {**manifest, "deep": json.loads("[" * 40 + "]" * 40)},
      "dataset.json is nested deeper than 16 levels"),
     (lambda manifest: DEEP, "dataset.json is nested deeper than 16 levels"),
     (lambda manifest: json.dumps(manifest).replace('"train"', '"train": NaN, "x"', 1),
      "NaN is not a JSON number")],
    ids=["deep-40", "deep-100000", "nan"],
)
def test_hostile_dataset_json_is_one_line(tmp_path, edit, expected):
    data = write_dataset(tmp_path / "data", [Slice("A0100", "1", [((10, 10, 30, 30), "A")])])
    path = tmp_path / "predictions.json"
    write_predictions(path, gt_as_predictions(data))
    manifest_path = data.root / "dataset.json"
    edited = edit(json.loads(manifest_path.read_text()))
    manifest_path.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    lines = _eval(path, data.root, tmp_path / "eval")
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines


def test_size_is_checked_before_parsing(tmp_path):
    path = tmp_path / "big.json"
    path.write_text("[" + "0," * 600 + "0]")
    with pytest.raises(DetectError, match=r"big.json: thing is larger than 0.001 MB; pass"):
        read_json(path, what="thing", max_bytes=1000, max_depth=4, hint="pass another")
    assert read_json(path, what="thing", max_bytes=2000, max_depth=4, hint="") == [0] * 601
