"""What the command line shows a user: help in the usual form (``--out PATH``, bare flags,
``SOURCE...``, no Python types), ``-v`` anywhere on the line, and no engine chatter unless
asked for (ultralytics' argument dump, layer table, "Overriding model.yaml nc=80")."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detect.cli import app

cli_main = importlib.import_module("detect.cli.main")  # the module, not its main()

COMMANDS = ("synth", "convert", "train", "eval", "predict", "export", "download", "demo")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_uses_the_usual_placeholders(command):
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    for leaked in ("<bool>", "<list", "<str>", "<path>", "<int>", "<float>", "{", "}"):
        assert leaked not in result.output, (command, leaked)
    usage = result.output.splitlines()[0]
    assert usage.startswith(f"Usage: detect {command} [OPTIONS]")
    assert all(word.isupper() or word.startswith(("[", "detect")) or word == command
               for word in usage.split()[1:]), usage


def test_verbose_works_after_the_command_too(monkeypatch):
    seen = []
    monkeypatch.setattr(cli_main, "app", lambda args, prog_name: seen.append(args))
    cli_main.main(["convert", "a", "b", "c", "-v"])
    cli_main.main(["--verbose", "predict", "x", "--", "-v"])  # after --: a value, not the flag
    cli_main.main(["eval", "--data", "d"])
    assert seen == [["--verbose", "convert", "a", "b", "c"],
                    ["--verbose", "predict", "x", "--", "-v"],
                    ["eval", "--data", "d"]]


def test_convert_takes_the_docs_spelling_of_tumour(tmp_path):
    from detect.convert.config import ConvertConfig

    (tmp_path / "dicom").mkdir()
    config = ConvertConfig(tmp_path / "dicom", tmp_path / "dicom", tmp_path / "out",
                           class_mode="tumour")
    assert config.class_mode == "tumor" and config.classes == ("tumor",)


def _detect(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(home)}
    return subprocess.run([str(Path(sys.executable).parent / "detect"), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=900)


def test_training_shows_detects_lines_not_the_engines(tiny_dataset, tmp_path):
    args = ("train", "--model", "yolov8", "--data", str(tiny_dataset), "--epochs", "1",
            "--imgsz", "64", "--batch", "4", "--device", "cpu", "--workers", "0",
            "--project", str(tmp_path / "runs"))
    quiet = _detect(*args, cwd=tmp_path, home=tmp_path / "home")
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    shown = quiet.stdout + quiet.stderr
    assert "epoch 1/1: mAP50" in shown and "run: " in shown
    for chatter in ("Overriding model.yaml", "Ultralytics", "optimizer:", "summary:",
                    "Results saved to"):
        assert chatter not in shown, chatter
    loud = _detect(*args, "-v", cwd=tmp_path, home=tmp_path / "home")
    assert loud.returncode == 0 and "Ultralytics" in loud.stdout + loud.stderr


@pytest.mark.parametrize("command", ["convert", "eval", "predict", "export"])
def test_every_command_that_writes_an_out_says_the_overwrite_rule(command):
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())
    assert "--overwrite Replace the result already in the output folder (only files detect " \
           "wrote there are deleted; a folder of other files is never used)." in text
    assert "refused unless --overwrite" in text  # the command's own description says so


def test_train_says_a_run_is_never_replaced():
    result = CliRunner().invoke(app, ["train", "--help"], terminal_width=100)
    text = " ".join(result.output.replace("│", " ").split())
    assert "A run is never replaced: a taken name gets -2, -3..." in text
