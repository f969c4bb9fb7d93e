"""``detect train --weights phantom|real`` names a shipped checkpoint, and a detector about
to train from scratch on a small dataset is warned about."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detect.cli import app
from detect.errors import ConfigError
from detect.shipped import PHANTOM_WEIGHTS_PARTS, REAL_WEIGHTS_PARTS, source_tree
from detect.train import TrainConfig, scratch_warning

runner = CliRunner()


def test_a_shipped_name_becomes_its_checkpoint_and_size(tmp_path):
    config = TrainConfig(model="yolov8", data=tmp_path, weights=Path("phantom"))
    assert config.weights == source_tree().joinpath(*PHANTOM_WEIGHTS_PARTS, "weights", "best.pt")
    assert config.size == "n"
    real = TrainConfig(model="yolov8", data=tmp_path, weights=Path("real"), size="n")
    assert real.weights == source_tree().joinpath(*REAL_WEIGHTS_PARTS, "weights", "best.pt")


@pytest.mark.parametrize("changes, message", [
    ({"model": "fasterrcnn"}, "is the shipped yolov8n checkpoint .* it fits --model yolov8 "
                              "--size n, not --model fasterrcnn"),
    ({"model": "yolov8", "size": "s"}, "not --model yolov8 --size s"),
    ({"model": "yolo11"}, "not --model yolo11"),
])
def test_a_shipped_checkpoint_of_another_model_is_refused(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(data=tmp_path, weights=Path("phantom"), **changes)


def test_a_file_of_that_name_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("phantom").write_bytes(b"mine")
    assert TrainConfig(model="yolov8", data=tmp_path, weights=Path("phantom")).weights == Path(
        "phantom")


def test_other_names_stay_paths(tmp_path):
    with pytest.raises(ConfigError, match="--weights phantom2 is not a file"):
        TrainConfig(model="yolov8", data=tmp_path, weights=Path("phantom2"))


def test_small_dataset_from_scratch_is_warned_about(tiny_dataset):
    text = scratch_warning(TrainConfig(model="fasterrcnn", data=tiny_dataset))
    assert text is not None and re.match(r"\d{1,2} training images and no --weights", text)
    assert "--weights phantom" in text
    assert scratch_warning(TrainConfig(model="yolov8", data=tiny_dataset,
                                       weights=Path("phantom"))) is None
    assert scratch_warning(TrainConfig(model="histology", data=tiny_dataset)) is None


def test_cli_prints_the_warning_before_training(tiny_dataset, tmp_path):
    data = tmp_path / "no-val"
    shutil.copytree(tiny_dataset, data)
    for png in (data / "images" / "val").glob("*.png"):
        png.unlink()  # training then stops at its dataset check, after the warning
    result = runner.invoke(app, ["train", "--model", "yolov8", "--data", str(data),
                                 "--project", str(tmp_path / "runs")])
    assert result.exit_code == 1
    assert result.output.startswith("warning: ") and "--weights phantom" in result.output
    assert "error: " in result.output and not (tmp_path / "runs").exists()
    result = runner.invoke(app, ["train", "--model", "yolov8", "--data", str(tiny_dataset),
                                 "--weights", "phantom", "--size", "s"])
    assert result.exit_code == 1 and "fits --model yolov8 --size n" in result.output
