"""A hostile or broken model.json: every field detect reads is checked (type and range)
and refused in one line that says what was expected and what was found; a file too large
or nested too deep is refused before or while parsing. Through the CLI: exit 1, one line,
no traceback."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from support.evaluation import Slice, write_dataset
from support.yolo import write_ct_series
from typer.testing import CliRunner

from detect.cli import app
from detect.errors import RunFolderError
from detect.models.registry import family_of
from detect.runs import ModelInfo, read_model_json, validate_model_json

DEMO = Path(__file__).resolve().parents[2] / "weights" / "demo-yolov8n-phantom"
BASE: dict[str, Any] = json.loads((DEMO / "model.json").read_text())


def _with(path: str, value: Any) -> dict[str, Any]:
    """BASE with the dotted ``path`` set to ``value`` (``...`` deletes it)."""
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    target = data
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is ...:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return data


HISTOLOGY = {**copy.deepcopy(BASE), "family": "histology", "size": None,
             "backbone": "resnet18", "imgsz": 64, "thresholds": {}, "geometry": True,
             "crop": {"margin": 0.25, "min_margin_px": 8.0}}

BAD: list[tuple[dict[str, Any], str]] = [
    (_with("thresholds.conf", "0.3"), "thresholds.conf must be a number in [0, 1], found '0.3'"),
    (_with("thresholds.conf", 1.5), "thresholds.conf must be a number in [0, 1], found 1.5"),
    (_with("thresholds.iou", -0.1), "thresholds.iou must be a number in [0, 1]"),
    (_with("thresholds.iou", True), "thresholds.iou must be a number in [0, 1], found True"),
    (_with("thresholds.nms", 0.5),
     "thresholds must be an object that may hold conf and iou, found 'nms'"),
    (_with("thresholds", [0.25]), "thresholds must be an object"),
    (_with("imgsz", 100000), "imgsz must be a multiple of 32 in [32, 4096] px, found 100000"),
    (_with("imgsz", 100), "imgsz must be a multiple of 32 in [32, 4096] px, found 100"),
    (_with("imgsz", 256.0), "imgsz must be a multiple of 32 in [32, 4096] px, found 256.0"),
    (_with("imgsz", "256"), "imgsz must be a multiple of 32 in [32, 4096] px, found '256'"),
    (_with("family", "resnet"),
     "family must be one of yolov8, yolo11, yolo26, fasterrcnn, histology, found 'resnet'"),
    (_with("family", ["yolov8"]), "family must be a model family's name, found ['yolov8']"),
    (_with("size", "q"), "size must be one of n, s, m, l, x for yolov8, found 'q'"),
    (_with("size", ...), "size must be one of n, s, m, l, x for yolov8, found None"),
    ({**BASE, "family": "fasterrcnn", "size": None, "backbone": "vgg16"},
     "backbone must be one of resnet50_fpn_v2, mobilenet_v3_large_fpn for fasterrcnn"),
    (_with("classes", [str(n) for n in range(101)]), "classes must be 1 to 100"),
    (_with("classes", ["A", 2]), "classes must be 1 to 100 distinct names"),
    (_with("classes", ["A" * 65]), "classes must be 1 to 100 distinct names"),
    (_with("classes", ["A\nB"]), "classes must be 1 to 100 distinct names"),
    (_with("classes", "ABEG"), "classes must be 1 to 100 distinct names"),
    (_with("class_mode", 5), "class_mode must be 'histology' or 'tumor', found 5"),
    (_with("recipe.windows.0.level_hu", "x"), "recipe.windows[0].level_hu must be a finite"),
    (_with("recipe.windows.0.width_hu", 1e999), "recipe.windows[0].width_hu must be a finite"),
    (_with("recipe.windows.0.name", {"a": 1}), "recipe.windows[0].name must be"),
    (_with("recipe.slice_offsets", [0.5, 0, 0]), "recipe.slice_offsets must be"),
    (_with("recipe.slice_step_mm", 0), "recipe.slice_step_mm must be a number of mm in (0, 50]"),
    (_with("recipe.slice_step_mm", "5mm"), "recipe.slice_step_mm must be a number of mm"),
    (_with("recipe.windows", "lung"), "recipe.windows must be a list"),
    (_with("recipe", "lung,mediastinum,wide"), "recipe must be an object"),
    (_with("weights.best", 5), "weights.best must be a relative path inside the run folder"),
    (_with("weights.best", "weights/../../x.pt"), "weights.best must be a relative path"),
    (_with("weights.best", ""), "weights.best must be a relative path"),
    (_with("weights.evil", "w.pt"),
     "weights must be an object that may name best and last, found 'evil'"),
    (_with("status", "done"), "status must be 'training' or 'complete', found 'done'"),
    (_with("metrics", {"mAP50": "high"}), "metrics.mAP50 must be a finite number or null"),
    (_with("metrics", [1]), "metrics must be an object or null"),
    (_with("dataset", "demo"), "dataset must be an object"),
    (_with("dataset.fingerprint", 5), "dataset.fingerprint must be a SHA-256"),
    (_with("dataset.splits.train", "A0001"), "dataset.splits.train must be a list of patient"),
    (_with("dataset.splits.train", [1, 2]), "dataset.splits.train must be a list of patient"),
    (_with("dataset.splits.holdout", []),
     "dataset.splits must be an object that may hold train, val and test"),
    (_with("versions", {"torch": 2}), "versions.torch must be a string"),
    (_with("args", []), "args must be an object"),
    (_with("args.sampling", "none"), "args.sampling must be an object"),
    (_with("args.resumed", "today"), "args.resumed must be a list of times"),
    (_with("export", {"format": "exe", "file": "weights/best.pt"}),
     "export.format must be 'onnx' or 'torchscript', found 'exe'"),
    ({**BASE, "weights": {"best": "model.onnx"}, "export": {
        "format": "onnx", "file": "../model.onnx", "sha256": "0" * 64, "opset": 17,
        "stride": 32, "parity": {"passed": True}}},
     "export.file must be the file named by weights.best"),
    ({**BASE, "weights": {"best": "model.onnx"}, "export": {
        "format": "onnx", "file": "model.onnx", "sha256": "0" * 64, "opset": "17",
        "stride": 32, "parity": {"passed": True}}},
     "export.opset must be an integer >= 17 or null, found '17'"),
    ({**HISTOLOGY, "crop": {"margin": "x", "min_margin_px": 8}},
     "crop.margin must be a finite number in [0, 2]"),
    ({**HISTOLOGY, "crop": {"margin": 0.25, "min_margin_px": 1e999}},
     "crop.min_margin_px must be a finite number in [0, 256]"),
    ({**HISTOLOGY, "backbone": "resnet50"}, "backbone must be one of resnet18"),
    ({**HISTOLOGY, "geometry": "yes"}, "geometry must be true or false"),
]


def _check(data: Any) -> None:
    """What a model.json goes through before a model is loaded: the shared fields, then
    its family's own."""
    validate_model_json(data, Path("model.json"))
    family_of(ModelInfo(root=Path("."), manifest=data))


@pytest.mark.parametrize(("data", "expected"), BAD, ids=[e[:48] for _, e in BAD])
def test_every_field_is_checked(data, expected):
    with pytest.raises(RunFolderError) as info:
        _check(data)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and len(message) < 400


def test_the_valid_manifests_pass():
    _check(copy.deepcopy(BASE))
    _check(copy.deepcopy(HISTOLOGY))
    _check({**BASE, "family": "fasterrcnn", "size": None, "backbone": "mobilenet_v3_large_fpn"})
    _check({**BASE, "family": "yolo26"})


def _run_folder(tmp_path: Path, text: str) -> Path:
    run = tmp_path / "run"
    shutil.copytree(DEMO, run)
    (run / "model.json").write_text(text)
    return run


def _nested(depth: int) -> str:
    return json.dumps(BASE)[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (json.dumps(BASE).replace('"conf": 0.25', '"conf": NaN'),
         "NaN is not a JSON number"),
        (json.dumps(BASE).replace('"iou": 0.7', '"iou": -Infinity'),
         "-Infinity is not a JSON number"),
        (_nested(100_000), "nested deeper than 12 levels"),
        (_nested(40), "nested deeper than 12 levels"),
        (json.dumps({**BASE, "notes": "x" * 1_100_000}), "larger than 1 MB"),
        (json.dumps(BASE).replace('"imgsz": 256', '"imgsz": ' + "9" * 5000), "unreadable"),
        ("[1, 2]", "expected format 'detect-model', found 'list'"),
    ],
    ids=["nan", "infinity", "deep-100000", "deep-40", "too-large", "huge-int", "list"],
)
def test_hostile_files_are_refused_while_reading(tmp_path, text, expected):
    with pytest.raises(RunFolderError) as info:
        read_model_json(_run_folder(tmp_path, text))
    assert expected in str(info.value) and "\n" not in str(info.value)


def _hostile_cli_cases() -> dict[str, str]:
    conf = json.dumps(_with("thresholds.conf", "0.3"))
    return {"conf-string": conf, "deep": _nested(100_000),
            "imgsz": json.dumps(_with("imgsz", 100000))}


@pytest.mark.parametrize("case", ["conf-string", "deep", "imgsz"])
@pytest.mark.parametrize("command", ["predict", "eval", "export"])
def test_cli_refuses_in_one_line(tmp_path, command, case):
    run = _run_folder(tmp_path, _hostile_cli_cases()[case])
    write_ct_series(tmp_path / "scans", slices=1)
    write_dataset(tmp_path / "data", [Slice("A0100", "1", [((10, 10, 30, 30), "A")])])
    args = {
        "predict": ["predict", str(tmp_path / "scans"), "--weights", str(run),
                    "--out", str(tmp_path / "out"), "--device", "cpu"],
        "eval": ["eval", "--weights", str(run), "--data", str(tmp_path / "data"),
                 "--out", str(tmp_path / "out")],
        "export": ["export", "--weights", str(run), "--format", "onnx",
                   "--out", str(tmp_path / "out")],
    }[command]
    result = CliRunner().invoke(app, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "model.json" in lines[0]
