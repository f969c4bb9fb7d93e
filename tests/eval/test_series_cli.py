"""``detect eval --series PREDICT_OUT --annotations ROOT`` (whole-series scoring from the
command line, on the hand-worked case of test_series.py), and the warning for records cut
above the scoring threshold (series and split scoring alike)."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detect.cli import app
from detect.errors import ConfigError
from detect.eval import EvalConfig, run_eval
from detect.eval.score import cut_warning
from detect.eval.series import PredictedSlice
from detect.eval.series_run import SeriesEvalConfig, run_series_eval
from detect.io.voc import VocObject, voc_xml_bytes
from detect.predictions import Prediction, write_predictions

runner = CliRunner()

# The hand-worked case of test_series.py: patient B0001, series S1 (slices 0-9, boxes on 4
# and 5) and S2 (slices 0-4, no box).
TUMOUR = (100.0, 100.0, 140.0, 140.0)
FAR = (300.0, 300.0, 330.0, 330.0)
SLICES = [PredictedSlice("B0001", "S1", f"s1.{i}", i) for i in range(10)] + [
    PredictedSlice("B0001", "S2", f"s2.{i}", i) for i in range(5)]


def _pred(sop: str, box: tuple[float, float, float, float], score: float,
          series: str = "S1") -> Prediction:
    return Prediction(sop_instance_uid=sop, series_instance_uid=series, patient_id="B0001",
                      xyxy=box, score=score, label="tumor", category_id=1)


PREDICTIONS = [_pred("s1.4", TUMOUR, 0.9), _pred("s1.6", TUMOUR, 0.8),
               _pred("s1.9", TUMOUR, 0.7), _pred("s2.1", FAR, 0.6, "S2"),
               _pred("s1.5", TUMOUR, 0.5), _pred("s1.3", FAR, 0.4)]


def _predict_out(folder: Path, cut: float | None) -> Path:
    """A folder as detect predict writes it: slices.csv and predictions.json."""
    folder.mkdir()
    with open(folder / "slices.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["patient_id", "series_instance_uid",
                                         "sop_instance_uid", "slice_index"])
        writer.writeheader()
        for one in SLICES:
            writer.writerow({"patient_id": one.patient_id, "slice_index": one.slice_index,
                             "series_instance_uid": one.series_instance_uid,
                             "sop_instance_uid": one.sop_instance_uid})
    kept = [dataclasses.replace(p, score_threshold=cut) for p in PREDICTIONS
            if cut is None or p.score >= cut]
    write_predictions(folder / "predictions.json", kept)
    return folder


@pytest.fixture
def annotations(tmp_path: Path) -> Path:
    root = tmp_path / "Annotation"
    (root / "B0001").mkdir(parents=True)
    for sop in ("s1.4", "s1.5"):
        (root / "B0001" / f"{sop}.xml").write_bytes(
            voc_xml_bytes([VocObject(name="B", xyxy=TUMOUR)], 512, 512, 1))
    return root


def test_the_cli_scores_whole_series(tmp_path, annotations):
    series = _predict_out(tmp_path / "pred", 0.0)
    result = runner.invoke(app, ["eval", "--series", str(series), "--annotations",
                                 str(annotations), "--conf", "0.45"])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output  # cut at 0: every box is there
    written = json.loads((series / "eval-series" / "series.json").read_text())
    assert written["format"] == "detect-eval-series" and written["records_cut_at"] == 0.0
    assert written["ap50_all_slices"] == pytest.approx((51 * 1.0 + 50 * 0.5) / 101, abs=1e-6)
    assert written["froc"]["sensitivity"][written["froc"]["rates_fp_per_series"].index(1.0)] \
        == pytest.approx(1.0)
    assert written["patients_found"] == {"B0001": True}
    assert "AP50, every slice" in result.output and "B0001 found" in result.output
    assert (series / "eval-series" / "report.html").is_file()


def test_records_cut_high_are_scored_with_a_warning(tmp_path, annotations):
    series = _predict_out(tmp_path / "pred", 0.65)
    run = run_series_eval(SeriesEvalConfig(series, annotations))
    assert run.score.conf == 0.65  # the cut is the operating threshold it was written at
    assert len(run.warnings) == 1 and "cut at score 0.65" in run.warnings[0]
    assert "--conf 0" in run.warnings[0]
    report = (series / "eval-series" / "report.md").read_text()
    assert "Warning: the predictions were cut at score 0.65" in report


@pytest.mark.parametrize("args, message", [
    (["--series", "PRED"], "takes --annotations"),
    (["--series", "PRED", "--annotations", "ANN", "--data", "x"], "neither --data"),
    (["--annotations", "ANN"], "takes --annotations ROOT"),
    ([], "needs --data DATASET"),
])
def test_wrong_combinations_are_one_line(tmp_path, annotations, args, message):
    series = _predict_out(tmp_path / "pred", 0.0)
    args = [str(series) if a == "PRED" else str(annotations) if a == "ANN" else a
            for a in args]
    result = runner.invoke(app, ["eval", *args])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert message in result.output


def test_a_folder_that_is_not_predicts_is_refused(tmp_path, annotations):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a detect predict output folder"):
        SeriesEvalConfig(tmp_path / "empty", annotations)


def test_cut_warning_only_above_the_scoring_threshold():
    record = PREDICTIONS[0]
    assert cut_warning([dataclasses.replace(record, score_threshold=0.001)]) is None
    assert cut_warning([dataclasses.replace(record, score_threshold=0.0)]) is None
    assert cut_warning([record]) is None  # a file that does not say
    assert "cut at score 0.25" in (cut_warning([dataclasses.replace(
        record, score_threshold=0.25)]) or "")


def test_split_eval_warns_in_console_metrics_and_report(dataset, tmp_path):
    coco = json.loads((dataset / "coco" / "test.json").read_text())
    image = coco["images"][0]
    box = next(a["bbox"] for a in coco["annotations"] if a["image_id"] == image["id"])
    records = [Prediction(sop_instance_uid=image["sop_instance_uid"],
                          series_instance_uid=image["series_instance_uid"],
                          patient_id=image["patient_id"],
                          xyxy=(box[0], box[1], box[0] + box[2], box[1] + box[3]),
                          score=0.9, label=image["histology"], category_id=1,
                          score_threshold=0.25)]
    path = tmp_path / "p.json"
    write_predictions(path, records)
    run = run_eval(EvalConfig(data=dataset, predictions=path, out=tmp_path / "e",
                              bootstrap=0))
    assert len(run.result.warnings) == 1
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["warnings"] == list(run.result.warnings)
    assert "Warning: the predictions were cut at score 0.25" in (
        tmp_path / "e" / "report.md").read_text()
    shown = runner.invoke(app, ["eval", "--predictions", str(path), "--data", str(dataset),
                                "--out", str(tmp_path / "e2"), "--bootstrap", "0"])
    assert shown.exit_code == 0 and "warning: the predictions were cut at score 0.25" in \
        shown.output.replace("\n", " ")
