"""CSV formula injection: a cell from a DICOM header or a file name that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return is written behind a single quote
(OWASP), in every CSV detect writes; numbers stay numbers."""

from __future__ import annotations

import csv
from pathlib import Path

import pydicom
import pytest
from support.detectors import SquareFinder
from support.yolo import write_ct_series

from detect.io.csvfile import FORMULA_STARTS
from detect.predict.run import PredictConfig, predict
from detect.predict.writers import write_csv
from detect.runs import write_metrics_csv

PAYLOAD = 'HYPERLINK("http://127.0.0.1/x","click")'


def _cells(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("start", FORMULA_STARTS, ids=repr)
def test_a_cell_that_starts_a_formula_is_quoted(tmp_path, start):
    path = tmp_path / "t.csv"
    write_csv(path, ("patient_id", "n"), [{"patient_id": f"{start}{PAYLOAD}", "n": 3}])
    (row,) = _cells(path)
    assert row["patient_id"] == f"'{start}{PAYLOAD}"
    assert row["n"] == "3"


@pytest.mark.parametrize("number", [-0.5, -3, "-0.25", "+1", "-1e-3", "12"])
def test_numbers_stay_numbers(tmp_path, number):
    path = tmp_path / "t.csv"
    write_csv(path, ("value",), [{"value": number}])
    assert _cells(path) == [{"value": str(number)}]


@pytest.mark.parametrize("text", ["-1+1", "-2-3", "+cmd|' /C calc'!A0", "-", "@SUM(A1)"])
def test_formula_like_text_is_not_mistaken_for_a_number(tmp_path, text):
    path = tmp_path / "t.csv"
    write_csv(path, ("value",), [{"value": text}])
    assert _cells(path) == [{"value": f"'{text}"}]


def test_metrics_csv_keeps_negative_numbers_numeric(tmp_path):
    path = tmp_path / "metrics.csv"
    write_metrics_csv(path, [{"epoch": 1, "train_box_loss": -0.25, "mAP50": 0.5}])
    (row,) = _cells(path)
    assert (row["epoch"], row["train_box_loss"], row["mAP50"]) == ("1", "-0.25", "0.5")


def _hostile_sources(root: Path) -> None:
    """A CT series whose PatientID and SeriesDescription start formulas, in a folder whose
    name does; a non-DICOM file named like a formula beside it."""
    paths = write_ct_series(root / "=folder", patient_id=f"={PAYLOAD}", slices=2)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.SeriesDescription = f"+{PAYLOAD}"
        ds.save_as(path, enforce_file_format=True)
    (root / "=folder" / "@SUM(1+1).txt").write_text("not DICOM")
    (root / "=folder" / "-2+3.dcm").write_text("not DICOM either")


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_predict_csvs_never_start_a_formula(tiny_run, tmp_path, monkeypatch):
    result, _ = tiny_run
    _hostile_sources(tmp_path / "in")
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: SquareFinder())
    monkeypatch.chdir(tmp_path / "in")  # relative sources: skipped paths start with "="
    out = tmp_path / "out"
    predict(PredictConfig(sources=(Path("=folder"),), weights=result.run_dir, out=out,
                          save=("json",), device="cpu", workers=1))
    tables = {name: _cells(out / f"{name}.csv")
              for name in ("summary", "slices", "skipped", "lesions")}
    assert len(tables["slices"]) == 2 and len(tables["skipped"]) == 2
    cells = [value for rows in tables.values() for row in rows for value in row.values()]
    # numbers stay numbers (a slice position of -5.0 mm is not a formula)
    assert not [c for c in cells if c.startswith(FORMULA_STARTS) and not _number(c)], cells
    series = next(row for row in tables["summary"] if row["level"] == "series")
    assert series["patient_id"] == f"'={PAYLOAD}"
    assert series["series_description"] == f"'+{PAYLOAD}"
    assert {row["path"] for row in tables["skipped"]} == {
        "'=folder/@SUM(1+1).txt", "'=folder/-2+3.dcm"}
    assert {row["path"] for row in tables["slices"]} == {
        f"'=folder/slice{k:03d}.dcm" for k in range(2)}
