"""The operating threshold is the model's: predict and eval use model.json's
``thresholds.conf`` unless --conf is given, and predictions.json, summary.csv and the SR
say which threshold made them."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pydicom
import pytest
from support.yolo import NetGuard

from detect.eval import EvalConfig, run_eval
from detect.predict.run import PredictConfig, predict
from detect.predictions import read_predictions

DEMO = Path(__file__).resolve().parents[2] / "weights" / "demo-yolov8n-phantom"


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory):
    """Two phantom patients at the demo model's size (256 px), converted too."""
    from detect.convert import convert
    from detect.convert.config import ConvertConfig
    from detect.synth.cohort import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("threshold")
    cohort = synthesize(root / "cohort", SynthConfig(patients=2, slices=16, size=256, seed=3,
                                                    letter_mix={"A": 1, "G": 1}, fused=False))
    convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, root / "data",
                          split=(0.5, 0.0, 0.5), workers=1))
    return cohort, root / "data"


def _run_with_conf(tmp_path: Path, conf: float) -> Path:
    run = tmp_path / "demo-run"
    shutil.copytree(DEMO, run)
    data = json.loads((run / "model.json").read_text())
    data["thresholds"]["conf"] = conf
    (run / "model.json").write_text(json.dumps(data))
    return run


def test_predict_keeps_the_models_threshold_and_records_it(phantom, tmp_path, monkeypatch):
    cohort, _ = phantom
    run = _run_with_conf(tmp_path, 0.6)
    with NetGuard(monkeypatch):
        own = predict(PredictConfig(sources=(cohort.dicom_root,), weights=run,
                                    out=tmp_path / "own", save=("json", "sr"), device="cpu"))
        low = predict(PredictConfig(sources=(cohort.dicom_root,), weights=run,
                                    out=tmp_path / "low", conf=0.25, device="cpu"))
    kept = read_predictions(own.files["predictions"])
    everything = read_predictions(low.files["predictions"])
    assert own.conf == 0.6 and low.conf == 0.25
    assert kept and all(p.score >= 0.6 for p in kept)
    assert any(0.25 <= p.score < 0.6 for p in everything)  # the threshold decided something
    assert {(p.sop_instance_uid, round(p.score, 6)) for p in everything if p.score >= 0.6} == {
        (p.sop_instance_uid, round(p.score, 6)) for p in kept}
    assert {p.score_threshold for p in kept} == {0.6}
    with open(own.files["summary"], newline="") as handle:
        assert {row["score_threshold"] for row in csv.DictReader(handle)} == {"0.6"}
    srs = sorted(own.files["sr"].rglob("*.dcm"))
    assert srs and all("conf=0.6" in str(pydicom.dcmread(path)) for path in srs)


def test_eval_scores_at_the_threshold_the_records_or_the_model_say(phantom, tmp_path,
                                                                   monkeypatch):
    cohort, data = phantom
    run = _run_with_conf(tmp_path, 0.6)
    with NetGuard(monkeypatch):
        made = predict(PredictConfig(sources=(cohort.dicom_root,), weights=run,
                                     out=tmp_path / "p", device="cpu"))
    # one patient per letter all land in train (the test split is empty, which eval refuses)
    scored = run_eval(EvalConfig(data=data, split="train", predictions=made.files["predictions"],
                                 out=tmp_path / "e", bootstrap=0, allow_leak=True))
    assert scored.result.settings["conf"] == 0.6
    forced = run_eval(EvalConfig(data=data, split="train", predictions=made.files["predictions"],
                                 out=tmp_path / "f", bootstrap=0, conf=0.3, allow_leak=True))
    assert forced.result.settings["conf"] == 0.3
