"""Faster R-CNN on a dataset whose images are not a multiple of 32 px (100 px): the family's
image size rule rounds up to 128 as YOLO's does, and the run completes (it used to stop at
model.json's check and leave an empty weights/ folder)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from detect.cli import app


def test_fasterrcnn_trains_on_100_px_images(tmp_path: Path):
    from detect.convert import convert
    from detect.convert.config import ConvertConfig
    from detect.synth.cohort import SynthConfig, synthesize

    cohort = synthesize(tmp_path / "cohort", SynthConfig(patients=3, slices=8, size=100, seed=2,
                                                        letter_mix={"A": 1}, fused=False))
    convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, tmp_path / "data",
                          class_mode="tumor", split=(0.34, 0.33, 0.33), workers=1))
    result = CliRunner().invoke(app, [
        "train", "--model", "fasterrcnn", "--data", str(tmp_path / "data"), "--epochs", "1",
        "--batch", "2", "--backbone", "mobilenet_v3_large_fpn", "--device", "cpu",
        "--workers", "0", "--project", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "runs" / "fasterrcnn" / "train" / "model.json").read_text())
    assert manifest["imgsz"] == 128 and manifest["status"] == "complete"
    assert (tmp_path / "runs" / "fasterrcnn" / "train" / "weights" / "best.pt").is_file()
