"""Scoring a split without images fails with one line (exit 1), before any model runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from detect.cli import app
from detect.convert import convert
from detect.convert.config import ConvertConfig
from detect.errors import DatasetError
from detect.eval import EvalConfig, run_eval

runner = CliRunner()


@pytest.fixture(scope="module")
def no_test(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from detect.synth.cohort import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("empty-test")
    cohort = synthesize(root / "c", SynthConfig(patients=2, slices=10, size=64, seed=3,
                                                fused=False))
    out = root / "ds"
    convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, out, workers=1,
                          split=(1.0, 0.0, 0.0)))
    return out


def test_empty_split_is_refused_with_its_reason(no_test, tmp_path):
    records = tmp_path / "p.json"
    records.write_text("[]")
    with pytest.raises(DatasetError, match=r"the test split has no images \(its --split "
                                           r"fraction is 0\); nothing to score"):
        run_eval(EvalConfig(data=no_test, predictions=records, out=tmp_path / "e"))
    assert not (tmp_path / "e").exists()


def test_the_model_is_never_run_on_an_empty_split(no_test, tmp_path):
    def predictor(*args, **kwargs):  # pragma: no cover - must not be called
        raise AssertionError("predicted an empty split")

    with pytest.raises(DatasetError, match="no images"):
        run_eval(EvalConfig(data=no_test, weights=tmp_path / "nowhere", out=tmp_path / "e"),
                 predict_split=predictor)


def test_cli_one_line_exit_1(no_test, tmp_path):
    records = tmp_path / "p.json"
    records.write_text("[]")
    result = runner.invoke(app, ["eval", "--predictions", str(records), "--data", str(no_test),
                                 "--split", "test", "--out", str(tmp_path / "e")])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert "--test-patients" in result.output
