"""The family registry: every family complete, defaults in one place, options refused by
the families they do not apply to, and no branch on a family's name outside models/."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detect.cli import app
from detect.errors import ConfigError, RunFolderError
from detect.models.families import FAMILIES
from detect.models.family import CLASSIFIER, DETECTOR, Family
from detect.models.registry import (
    TrainConfig,
    defaults_text,
    families_taking,
    family_for,
    family_names,
    family_of,
    get_family,
)
from detect.models.training import RunOptions
from detect.runs import ModelInfo

PACKAGE = Path(__file__).resolve().parents[2] / "detect"
NAMES = {family.name for family in FAMILIES}


def test_every_family_is_registered_once_with_what_it_must_have():
    assert family_names() == ("yolov8", "yolo11", "yolo26", "fasterrcnn", "histology")
    assert len(NAMES) == len(FAMILIES)
    for family in FAMILIES:
        assert isinstance(family, Family) and family.summary
        assert issubclass(family.config_type, RunOptions)
        assert dataclasses.is_dataclass(family.config_type)
        assert set(family.options) <= {"imgsz", "size", "class_weighting", "amp", "backbone",
                                       "nbs", "optimizer", "lr0", "mosaic"}
        assert family.role in (DETECTOR, CLASSIFIER)
        if family.role == DETECTOR:
            assert set(family.thresholds) == {"conf", "iou"}
            assert 0 < family.thresholds["conf"] < 1 and 0 < family.thresholds["iou"] < 1
            assert family.export_formats == ("onnx", "torchscript")
            assert type(family).load_detector is not Family.load_detector
            assert type(family).export is not Family.export
        else:
            assert type(family).load_head is not Family.load_head


def test_each_default_lives_in_the_family_config():
    for name, epochs, batch, weighting in (("yolov8", 100, 16, "none"),
                                           ("yolo26", 100, 16, "none"),
                                           ("fasterrcnn", 50, 8, "none"),
                                           ("histology", 30, 32, "loss")):
        family, config = TrainConfig(model=name, data=Path(".")).resolve()
        assert family is get_family(name)
        assert (config.epochs, config.batch, config.class_weighting) == (
            epochs, batch, weighting)
        assert family.default("epochs") == epochs  # --help reads the same field
        assert family_for(config) is family
    _, given = TrainConfig(model="fasterrcnn", data=Path("."), epochs=3, batch=2).resolve()
    assert (given.epochs, given.batch) == (3, 2)
    assert defaults_text("epochs") == "100; fasterrcnn 50, histology 30"
    assert defaults_text("backbone") == "fasterrcnn resnet50_fpn_v2, histology resnet18"
    help_text = CliRunner().invoke(app, ["train", "--help"], terminal_width=200).output
    assert "fasterrcnn 50, histology 30" in help_text and "yolo26" in help_text


@pytest.mark.parametrize(("model", "option", "value"), [
    ("fasterrcnn", "mosaic", 0.0), ("histology", "amp", "off"), ("yolov8", "backbone", "x"),
    ("histology", "size", "s"), ("fasterrcnn", "optimizer", "SGD"),
])
def test_an_option_is_refused_by_a_family_it_does_not_apply_to(model, option, value):
    flag = "--" + option.replace("_", "-")
    takers = ", ".join(families_taking(option))
    with pytest.raises(ConfigError, match=f"^{flag} is for --model {takers}, not {model}$"):
        TrainConfig(model=model, data=Path("."), **{option: value})


def test_unknown_families_are_one_line():
    with pytest.raises(ConfigError, match="--model must be one of yolov8, yolo11, yolo26"):
        get_family("yolov5")
    info = ModelInfo(root=Path("run"), manifest={"family": "detr"})
    with pytest.raises(RunFolderError, match=r"family must be one of .* found 'detr'"):
        family_of(info)


def _branches_on_a_family_name(tree: ast.AST) -> list[int]:
    """Lines comparing a family/model variable with a family name, or dispatch tables
    keyed by two or more family names."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            text = " ".join(ast.unparse(side) for side in sides)
            names = {c.value for side in sides for c in ast.walk(side)
                     if isinstance(c, ast.Constant) and c.value in NAMES}
            if names and ("family" in text or "model" in text):
                lines.append(node.lineno)
        if isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            if len(keys & NAMES) >= 2:
                lines.append(node.lineno)
    return lines


def test_nothing_outside_models_branches_on_a_family_name():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "models" in path.relative_to(PACKAGE).parts:
            continue
        lines = _branches_on_a_family_name(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            found[str(path.relative_to(PACKAGE))] = lines
    assert found == {}


def test_the_branch_finder_finds_a_branch():  # the test above can fail
    code = 'if info.family in ("yolov8", "yolo11"):\n    pass\nT = {"yolov8": 1, "fasterrcnn": 2}\n'
    assert _branches_on_a_family_name(ast.parse(code)) == [1, 3]
