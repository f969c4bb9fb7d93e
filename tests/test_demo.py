"""`detect demo` end to end at a tiny size: every stage runs and the report is real."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from detect.cli import app
from detect.demo.run import DemoConfig
from detect.errors import ConfigError


def test_tiny_demo_end_to_end(tmp_path, yolo_env):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--patients", "8",
                                      "--slices", "12", "--size", "64", "--epochs", "1",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for stage in ("1/6 synth", "2/6 convert", "3/6 train", "4/6 eval", "5/6 predict",
                  "6/6 real CT"):
        assert stage in result.output
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    report = (out / "eval" / "report.md").read_text()
    counts, froc = metrics["counts"], metrics["froc"]
    assert counts["gt_boxes"] > 0 and counts["patients"] == len(
        json.loads((out / "dataset" / "dataset.json").read_text())["splits"]["test"])
    assert f"Predictions: {counts['predictions']} read" in report
    assert f"{froc['lesions']} lesions (gt boxes) in {froc['scans']} scans" in report
    assert f"| mAP50 (COCO) | {metrics['detection']['map50']:.3f} |" in report
    assert (out / "eval" / "report.html").stat().st_size > 10_000  # figures embedded
    assert str(out / "eval" / "report.html") in result.output
    # the report ends on real CT: the shipped real model on the repository's real sample
    real = json.loads((out / "real" / "metrics.json").read_text())
    assert "## Real CT: Lung-PET-CT-Dx patient A0002 (never trained on)" in report
    assert f"| tumour AP50, annotated slices | {real['ap50_annotated']:.3f} |" in report
    assert "(../real/side_by_side.png)" in report
    # beside the figure, the lesions detect predict reports at the model's threshold
    lesions = report[report.index("### Lesions at the operating threshold"):]
    table = lesions[lesions.index("| lesion | score | slices |"):
                    lesions.index("(../real/side_by_side.png)")]
    rows = [line for line in table.splitlines()[2:] if line.startswith("| ")]
    found = real["at_threshold"]["lesions"]
    assert len(rows) == max(len(found), 1)
    for lesion, row in zip(found, rows):
        assert row.startswith(f"| {lesion['lesion']} | {lesion['score']:.2f} |")
    model = json.loads((out / "runs" / "yolov8" / "demo" / "model.json").read_text())
    assert model["status"] == "complete" and model["family"] == "yolov8"
    short = {"nbs": 16, "optimizer": "AdamW", "lr0": 0.004, "mosaic": 0.0}  # --hyp short
    assert {key: model["args"]["ultralytics"][key] for key in short} == short
    summary = (out / "predict" / "summary.csv").read_text().splitlines()
    test_patients = json.loads((out / "dataset" / "dataset.json").read_text())["splits"]["test"]
    assert test_patients and all(any(p in row for row in summary) for p in test_patients)


def test_demo_refuses_a_used_folder_and_bad_sizes(tmp_path):
    (tmp_path / "dataset").mkdir()
    with pytest.raises(ConfigError, match="already holds a demo"):
        DemoConfig(out=tmp_path)
    with pytest.raises(ConfigError, match="patients"):
        DemoConfig(out=tmp_path / "new", patients=3)
    with pytest.raises(ConfigError, match="--hyp must be one of short, ultralytics"):
        DemoConfig(out=tmp_path / "new", hyp="fast")
