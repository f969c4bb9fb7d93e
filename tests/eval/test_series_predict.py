"""``detect eval --series`` on what ``detect predict`` itself wrote (not a hand-made
folder): the slices it read, its records at ``--conf 0``, scored against a VOC box; and
the report folder under eval's one overwrite rule."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydicom import dcmread
from support.detectors import SquareFinder
from support.hostile import one_line_error, run_cli
from support.yolo import SQUARE, write_ct_series

from detect.errors import OutputFolderError
from detect.eval.series_run import SeriesEvalConfig, run_series_eval
from detect.io.voc import VocObject, voc_xml_bytes
from detect.predict.run import PredictConfig, predict

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "weights" / "demo-yolov8n-phantom"
X, Y = 20, 24  # write_ct_series' square


@pytest.fixture
def predicted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A predict output folder (5 slices, a box on each) and an annotation root boxing the
    square on slice 2 only."""
    paths = write_ct_series(tmp_path / "scan", slices=5, patient_id="Lung_Dx-A0001")
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: SquareFinder())
    out = tmp_path / "pred"
    predict(PredictConfig(sources=(tmp_path / "scan",), weights=RUN, out=out, device="cpu",
                          workers=1, conf=0.0, save=("json",)))
    sop = str(dcmread(paths[2], stop_before_pixels=True).SOPInstanceUID)
    root = tmp_path / "Annotation" / "A0001"
    root.mkdir(parents=True)
    (root / f"{sop}.xml").write_bytes(voc_xml_bytes(
        [VocObject(name="A", xyxy=(X, Y, X + SQUARE, Y + SQUARE))], 64, 64, 1))
    return out, root.parent


def test_predicts_own_output_scores_over_every_slice(predicted):
    out, annotations = predicted
    run = run_series_eval(SeriesEvalConfig(out, annotations, near_slices=0))
    written = json.loads((out / "eval-series" / "series.json").read_text())
    assert written["records_cut_at"] == 0.0 and run.warnings == ()
    assert written["counts"]["series"] == 1 and written["counts"]["slices"] == 5
    assert written["counts"]["annotated_slices"] == 1 and written["counts"]["boxes"] == 1
    # one hit (slice 2) and four false positives of the same score (near_slices=0): AP50
    # on the annotated slice is 1; the FROC counts the tie as one step, 4 FP per series
    assert written["ap50_annotated"] == pytest.approx(1.0, abs=1e-6)
    froc = dict(zip(written["froc"]["rates_fp_per_series"], written["froc"]["sensitivity"],
                    strict=True))
    assert froc[2.0] == pytest.approx(0.0) and froc[4.0] == pytest.approx(1.0)
    assert written["patients_found"] == {"A0001": True}


def test_a_second_series_eval_needs_overwrite(predicted):
    out, annotations = predicted
    run_series_eval(SeriesEvalConfig(out, annotations))
    report = out / "eval-series" / "series.json"
    before = report.read_bytes()
    with pytest.raises(OutputFolderError, match=re.escape(str(out / "eval-series")) +
                       r" holds the whole-series report of .*pass --overwrite"):
        run_series_eval(SeriesEvalConfig(out, annotations, near_slices=0))
    assert report.read_bytes() == before
    line = one_line_error(run_cli("eval", "--series", out, "--annotations", annotations,
                                  "--near-slices", "0"), "pass --overwrite")
    assert "holds the whole-series report" in line
    run_series_eval(SeriesEvalConfig(out, annotations, near_slices=0, overwrite=True))
    assert json.loads(report.read_text())["settings"]["near_slices"] == 0


@pytest.mark.parametrize(("model_conf", "found"), [(0.95, False), (0.5, True)])
def test_a_file_written_at_conf_0_is_judged_at_the_models_threshold(
        tmp_path, monkeypatch, model_conf, found):
    """predict --conf 0 keeps every box for scoring and records the model's own threshold
    beside it; "patient found" is then taken there, not at the cut (0) nor at 0.25. The
    stand-in's boxes score 0.9: missed at a model threshold of 0.95, found at 0.5."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    manifest = json.loads((run / "model.json").read_text())
    manifest["thresholds"]["conf"] = model_conf
    (run / "model.json").write_text(json.dumps(manifest))
    paths = write_ct_series(tmp_path / "scan", slices=3, patient_id="Lung_Dx-A0001")
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: SquareFinder())
    out = tmp_path / "pred"
    predict(PredictConfig(sources=(tmp_path / "scan",), weights=run, out=out, device="cpu",
                          workers=1, conf=0.0, save=("json",)))
    records = json.loads((out / "predictions.json").read_text())
    assert records and all(r["score_threshold"] == 0.0 for r in records)
    assert all(r["model_threshold"] == pytest.approx(model_conf) for r in records)
    sop = str(dcmread(paths[1], stop_before_pixels=True).SOPInstanceUID)
    root = tmp_path / "Annotation" / "A0001"
    root.mkdir(parents=True)
    (root / f"{sop}.xml").write_bytes(voc_xml_bytes(
        [VocObject(name="A", xyxy=(X, Y, X + SQUARE, Y + SQUARE))], 64, 64, 1))
    run_series_eval(SeriesEvalConfig(out, root.parent))
    written = json.loads((out / "eval-series" / "series.json").read_text())
    assert written["settings"]["conf"] == pytest.approx(model_conf)
    assert written["patients_found"] == {"A0001": found}
