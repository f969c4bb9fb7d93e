"""The command line as a user meets it: help, version, synth, one-line errors."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from detect import __version__
from detect.cli import app

runner = CliRunner()


def test_version_and_help_lists_commands():
    assert runner.invoke(app, ["--version"]).output.strip() == f"detect {__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("synth", "convert", "train", "eval", "predict"):
        assert command in result.output


@pytest.mark.parametrize("command", ["synth", "convert", "train", "eval", "predict"])
def test_every_command_has_an_example(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Example: detect " + command in result.output


def test_synth_then_convert_through_the_cli(tmp_path):
    made = runner.invoke(app, ["synth", str(tmp_path / "ph"), "--patients", "4", "--slices",
                               "10", "--size", "64", "--letter-mix", "A=1,G=1"])
    assert made.exit_code == 0, made.output
    assert "next: detect convert" in made.output
    converted = runner.invoke(app, ["convert", str(tmp_path / "ph" / "Lung-PET-CT-Dx"),
                                    str(tmp_path / "ph" / "Annotation"), str(tmp_path / "ds"),
                                    "--workers", "1"])
    assert converted.exit_code == 0, converted.output
    assert (tmp_path / "ds" / "dataset.json").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--patients", "0"], "patients"),
        (["--letter-mix", "A=x"], "--letter-mix"),
        (["--layout", "flat"], "layout"),
    ],
)
def test_synth_bad_options_one_line(tmp_path, args, message):
    result = runner.invoke(app, ["synth", str(tmp_path / "o"), *args])
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_usage_error_exit_code_2():
    assert runner.invoke(app, ["convert"]).exit_code == 2
