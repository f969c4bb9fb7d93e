"""detect export: ONNX and TorchScript for both families, the parity check, predict through
ONNX Runtime, and bad inputs through the CLI. Tiny: the session's 64 px YOLO run and a
64 px mobilenet Faster R-CNN trained for one step here."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.yolo import NetGuard, run_fresh_python, write_ct_series
from typer.testing import CliRunner

from detect.cli import app
from detect.errors import ExportError
from detect.export.parity import BOX_TOL_PX, SCORE_TOL, compare_detections, matched_pairs
from detect.export.run import ExportConfig, ExportResult, export_model
from detect.models.base import Detections
from detect.models.runtime.record import file_sha256
from detect.predict.run import PredictConfig, predict
from detect.predictions import Prediction, read_predictions

runner = CliRunner()
CASES = [("yolov8", "onnx"), ("yolov8", "torchscript"), ("fasterrcnn", "onnx"),
         ("fasterrcnn", "torchscript")]


@pytest.fixture(scope="module")
def frcnn_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mobilenet Faster R-CNN, one training step at 64 px (untrained scores ~0.2)."""
    from detect.models.faster_rcnn.config import FasterRCNNConfig
    from detect.train import train_config

    config = FasterRCNNConfig(data=tiny_dataset, backbone="mobilenet_v3_large_fpn", epochs=1,
                              imgsz=64, batch=2, device="cpu", workers=0, max_steps=1,
                              project=tmp_path_factory.mktemp("frcnn"))
    return train_config(config).run_dir


@pytest.fixture(scope="module")
def yolo_run(tiny_run: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's YOLO run folder with a seeded random yolov8n as best.pt. The 1-epoch
    run's head is nearly constant (boxes vary by 1e-5 px between images), which would let
    a broken export pass; here BatchNorm statistics come from phantom slices and the class
    logits are centred, so boxes move with the image and scores spread over (0, 1).
    No training."""
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    from detect.export.parity import parity_images
    from detect.models.yolo.env import prepare_ultralytics
    from detect.runs import read_model_json

    run = tmp_path_factory.mktemp("random-yolo") / "run"
    shutil.copytree(tiny_run[0].run_dir, run)
    info = read_model_json(run)
    prepare_ultralytics()
    torch.manual_seed(0)
    net = DetectionModel("yolov8n.yaml", nc=len(info.classes), verbose=False)
    net.names = dict(enumerate(info.classes))
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # running stats = the statistics of the batch below
    for branch in net.model[-1].cv3:  # class logits centred and small: no saturated 1.0 ties
        branch[-1].bias.data.zero_()
        branch[-1].weight.data.mul_(0.1)
    images = np.stack(parity_images(info.recipe, info.imgsz, seed=11)[:3])
    with torch.no_grad():
        net.train()(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    yolo = YOLO("yolov8n.yaml")
    yolo.model = net.eval()
    yolo.save(str(run / "weights" / "best.pt"))
    return run


@pytest.fixture(scope="module")
def runs(yolo_run: Path, frcnn_run: Path) -> dict[str, Path]:
    return {"yolov8": yolo_run, "fasterrcnn": frcnn_run}


@pytest.fixture(scope="module")
def exports(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[tuple[str, str], tuple[ExportResult, list[str], set[Path]]]]:
    """Every family in every format, offline; with what each run folder held before."""
    done = {}
    with pytest.MonkeyPatch.context() as mp, NetGuard(mp) as guard:
        for family, fmt in CASES:
            before = set(runs[family].rglob("*"))
            out = tmp_path_factory.mktemp("export") / f"{family}-{fmt}"
            done[(family, fmt)] = (export_model(ExportConfig(runs[family], fmt, out)),
                                   list(guard.attempts), before)
    yield done


@pytest.mark.parametrize(("family", "fmt"), CASES)
def test_export_writes_the_model_and_its_model_json_with_parity(family, fmt, exports, runs):
    result, attempts, before = exports[(family, fmt)]
    assert attempts == []  # nothing downloaded, nothing pip-installed
    assert set(runs[family].rglob("*")) == before  # nothing written into the run folder
    suffix = ".onnx" if fmt == "onnx" else ".torchscript"
    assert result.file == result.out / f"model{suffix}" and result.file.stat().st_size > 0
    assert sorted(p.name for p in result.out.iterdir()) == sorted(
        ["model.json", "README.md", result.file.name])
    readme = (result.out / "README.md").read_text()
    assert f"--weights {result.file.name}" in readme and "Not for clinical use" in readme
    source = json.loads((runs[family] / "model.json").read_text())
    exported = json.loads(result.model_json.read_text())
    assert exported["weights"] == {"best": result.file.name}
    for key in ("family", "classes", "class_mode", "recipe", "imgsz", "thresholds", "dataset"):
        assert exported[key] == source[key], key
    record = exported["export"]
    assert (record["format"], record["file"]) == (fmt, result.file.name)
    assert record["opset"] == (17 if fmt == "onnx" else None)
    assert record["input"]["size_px"] == 64 and record["sha256"] == file_sha256(result.file)
    assert record["source"]["weights"] == str((runs[family] / "weights/best.pt").resolve())
    parity = record["parity"]
    assert parity["passed"] is True and parity["failures"] == []
    assert parity["images"] == 4 and parity["reference"] > 0
    # unmatched: only borderline scores at the threshold, or NMS ties (module doc)
    assert parity["matched"] >= 0.9 * parity["reference"]
    assert parity["max_box_diff_px"] <= BOX_TOL_PX and parity["max_score_diff"] <= SCORE_TOL
    assert (parity["box_tol_px"], parity["score_tol"]) == (BOX_TOL_PX, SCORE_TOL)
    if family == "yolov8":  # every anchor of the head is compared too
        assert parity["head_values"] == 4 * (4 + 4) * 84
        assert parity["head_max_box_diff_px"] < 0.1 and parity["head_max_score_diff"] < 1e-4
    if fmt == "torchscript":  # the same kernels: identical numbers
        assert parity["max_box_diff_px"] == 0.0 and parity["max_score_diff"] == 0.0


def _by_slice(predictions: list[Prediction]) -> dict[str, Detections]:
    groups: dict[str, list[Prediction]] = {}
    for p in predictions:
        groups.setdefault(p.sop_instance_uid, []).append(p)
    return {
        sop: Detections(xyxy=np.float32([p.xyxy for p in ps]).reshape(-1, 4),
                        scores=np.float32([p.score for p in ps]),
                        classes=np.int64([p.category_id - 1 for p in ps]))
        for sop, ps in groups.items()
    }


@pytest.mark.parametrize("family", ["yolov8", "fasterrcnn"])
def test_predict_through_onnxruntime_equals_predict_through_torch(
    family, exports, runs, tiny_cohort, tmp_path, monkeypatch
):
    onnx_file = exports[(family, "onnx")][0].file
    found = {}
    with NetGuard(monkeypatch) as guard:
        for name, weights in (("torch", runs[family]), ("onnx", onnx_file)):
            summary = predict(PredictConfig(
                sources=(tiny_cohort.dicom_root,), weights=weights, out=tmp_path / name,
                conf=0.001, device="cpu", workers=1, save=("json",)))
            found[name] = (summary, read_predictions(tmp_path / name / "predictions.json"))
    assert guard.attempts == []
    (torch_summary, torch_preds), (onnx_summary, onnx_preds) = found["torch"], found["onnx"]
    assert torch_summary.slices == onnx_summary.slices == 48
    assert len(torch_preds) == len(onnx_preds) > 0
    torch_slices, onnx_slices = _by_slice(torch_preds), _by_slice(onnx_preds)
    assert set(torch_slices) == set(onnx_slices)
    sops = sorted(torch_slices)
    result = compare_detections([torch_slices[s] for s in sops], [onnx_slices[s] for s in sops],
                                conf=0.001)
    assert result.passed, result.failures[:3]
    assert result.reference == result.exported == len(torch_preds)
    assert result.matched + result.ties >= result.reference  # every box, or its NMS twin
    if family == "yolov8":  # the class-score vectors (histology) agree too, box by box
        for sop in sops:
            mine = [p for p in torch_preds if p.sop_instance_uid == sop]
            theirs = [p for p in onnx_preds if p.sop_instance_uid == sop]
            assert len(mine) == len(theirs), sop
            pairs = matched_pairs(_by_slice(mine)[sop], _by_slice(theirs)[sop], conf=0.001)
            assert len(pairs) >= len(mine) - result.ties  # NMS twins may stay unpaired
            for i, j in pairs:
                a, b = mine[i], theirs[j]
                assert a.label == b.label and a.histology and b.histology
                assert max(abs(a.histology[k] - b.histology[k]) for k in a.histology) < 1e-3


def test_a_wrong_runtime_preprocessing_fails_the_parity_check(runs, tmp_path, monkeypatch):

    from detect.models.yolo import runtime as yolo_runtime
    from detect.models.yolo.decode import letterbox

    def not_normalised(images: list[np.ndarray], imgsz: int) -> np.ndarray:  # forgot the /255
        return np.stack([letterbox(image, imgsz) for image in images]).transpose(
            0, 3, 1, 2).astype(np.float32)

    monkeypatch.setattr(yolo_runtime, "model_input", not_normalised)
    out = tmp_path / "broken"
    with pytest.raises(ExportError, match=r"parity check failed, model\.torchscript removed: .*"
                                          r"raw head") as caught:
        export_model(ExportConfig(runs["yolov8"], "torchscript", out))
    assert "\n" not in str(caught.value)
    assert not (out / "model.torchscript").exists() and not (out / "model.json").exists()


def _det(boxes: list[list[float]], scores: list[float], classes: list[int]) -> Detections:
    return Detections(xyxy=np.float32(boxes).reshape(-1, 4), scores=np.float32(scores),
                      classes=np.int64(classes))


def test_matching_rules_and_tolerances():
    ref = _det([[10, 10, 30, 30], [40, 40, 60, 60]], [0.9, 0.5], [0, 1])
    same = compare_detections([ref], [_det([[40.5, 40, 60, 60.4], [10, 10, 30, 30]],
                                           [0.5004, 0.9], [1, 0])], conf=0.25)
    assert same.passed and same.matched == 2 and same.max_box_diff_px == pytest.approx(0.5)
    moved = compare_detections([ref], [_det([[10, 10, 30, 30], [41.5, 40, 60, 60]],
                                            [0.9, 0.5], [0, 1])], conf=0.25)
    assert not moved.passed and "no exported match (nearest 1.500 px" in moved.failures[0]
    rescored = compare_detections([ref], [_det([[10, 10, 30, 30], [40, 40, 60, 60]],
                                               [0.9, 0.502], [0, 1])], conf=0.25)
    assert not rescored.passed and "score diff 2.00e-03" in rescored.failures[0]
    relabelled = compare_detections([ref], [_det([[10, 10, 30, 30], [40, 40, 60, 60]],
                                                  [0.9, 0.5], [0, 2])], conf=0.25)
    assert not relabelled.passed and len(relabelled.failures) == 2  # missing and extra
    borderline = compare_detections([_det([[10, 10, 30, 30]], [0.2505], [0])],
                                    [_det([], [], [])], conf=0.25)
    assert borderline.passed and borderline.matched == 0  # within 1e-3 of the threshold
    capped = compare_detections([_det([[0, 0, 5, 5], [9, 9, 20, 20]], [0.9, 0.3], [0, 0])],
                                [_det([[0, 0, 5, 5], [50, 50, 60, 60]], [0.9, 0.3], [0, 0])],
                                conf=0.01, cap=2)
    assert capped.passed  # both lists full: the last score is the threshold
    assert not compare_detections([ref], [_det([], [], [])], conf=0.25).passed


def test_nms_and_class_ties_are_not_failures():
    # two overlapping boxes with equal scores: the runtimes kept different ones
    kept_a = _det([[10, 10, 30, 30]], [0.8], [0])
    kept_b = _det([[11, 10, 31, 30]], [0.8], [0])  # IoU 0.9 with the other
    tie = compare_detections([kept_a], [kept_b], conf=0.25, nms_iou=0.7, box_tol_px=0.5)
    assert tie.passed and (tie.matched, tie.ties) == (0, 2)
    assert not compare_detections([kept_a], [kept_b], conf=0.25, nms_iou=0.95,
                                  box_tol_px=0.5).passed  # overlap below the NMS IoU
    # the same box, another class: a tie only if that class scored as high
    ref = Detections(xyxy=np.float32([[10, 10, 30, 30]]), scores=np.float32([0.6]),
                     classes=np.int64([0]), class_scores=np.float32([[0.6, 0.5996, 0.1]]))
    other = _det([[10, 10, 30, 30]], [0.5996], [1])
    assert compare_detections([ref], [other], conf=0.25).ties == 1
    far = _det([[10, 10, 30, 30]], [0.6], [2])
    assert not compare_detections([ref], [far], conf=0.25).passed


def _fails(args: list[str], *expected: str) -> str:
    done = runner.invoke(app, args)
    assert done.exit_code == 1, done.output
    lines = done.output.strip().splitlines()
    assert len(lines) == 1, done.output
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def test_bad_inputs_are_one_line_through_the_cli(exports, runs, tmp_path):
    yolo = str(runs["yolov8"])
    _fails(["export", "--weights", yolo, "--format", "tflite", "--out", str(tmp_path / "a")],
           "--format must be one of onnx, torchscript, got 'tflite'")
    assert not (tmp_path / "a").exists()
    loose = tmp_path / "loose" / "model.pt"
    loose.parent.mkdir()
    loose.write_bytes(b"not a checkpoint")
    _fails(["export", "--weights", str(loose), "--format", "onnx"], "is not a detect model")
    onnx_result = exports[("fasterrcnn", "onnx")][0]
    _fails(["export", "--weights", str(onnx_result.file), "--format", "onnx"],
           "already an exported model")
    _fails(["export", "--weights", yolo, "--format", "onnx", "--out", str(onnx_result.out)],
           "pass --overwrite to replace it")
    scans = tmp_path / "scans"
    write_ct_series(scans, slices=1)
    alone = tmp_path / "alone" / "model.onnx"
    alone.parent.mkdir()
    shutil.copyfile(onnx_result.file, alone)
    _fails(["predict", str(scans), "--weights", str(alone), "--out", str(tmp_path / "p1")],
           "no model.json beside it")
    tampered = tmp_path / "tampered"
    shutil.copytree(onnx_result.out, tampered)
    with open(tampered / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    _fails(["predict", str(scans), "--weights", str(tampered / "model.onnx"), "--out",
            str(tmp_path / "p2")], "SHA-256 differs")


def test_missing_onnx_tools_are_one_line(runs, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxslim" else real(name, *a))
    _fails(["export", "--weights", str(runs["yolov8"]), "--format", "onnx", "--out",
            str(tmp_path / "o")], "needs onnxslim", "pip install onnxslim")
    assert not (tmp_path / "o").exists()


def test_ultralytics_never_pip_installs(tmp_path):
    """In a fresh interpreter (ultralytics reads YOLO_AUTOINSTALL once, at import)."""
    script = (
        "import subprocess\n"
        "def refuse(*a, **k): raise SystemExit('pip was called')\n"
        "subprocess.check_output = refuse\n"
        "from detect.models.yolo.env import prepare_ultralytics\n"
        "prepare_ultralytics()\n"
        "from ultralytics.utils import AUTOINSTALL\n"
        "from ultralytics.utils.checks import check_requirements\n"
        "print(AUTOINSTALL, check_requirements(['onnxslim>=99']))\n"
    )
    done = run_fresh_python(script, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False False"


def test_export_and_predict_through_the_cli(runs, tmp_path):
    helped = runner.invoke(app, ["export", "--help"])
    assert helped.exit_code == 0 and "Example: detect export" in helped.output
    out = tmp_path / "ts"
    done = runner.invoke(app, ["export", "--weights", str(runs["fasterrcnn"]), "--format",
                               "torchscript", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert f"exported {out / 'model.torchscript'}" in done.output
    assert "parity      passed: " in done.output
    write_ct_series(tmp_path / "scans", slices=2)
    for weights in (out, out / "model.torchscript"):  # the folder, or the file in it
        target = tmp_path / f"p-{weights.name}"
        predicted = runner.invoke(app, ["predict", str(tmp_path / "scans"), "--weights",
                                        str(weights), "--out", str(target), "--device", "cpu",
                                        "--conf", "0.001"])
        assert predicted.exit_code == 0, predicted.output
        assert "predicted 2 slices of 1 CT series" in predicted.output
        assert len(read_predictions(target / "predictions.json")) > 0


def test_yolo_export_writes_nothing_in_the_current_folder(runs, tmp_path, monkeypatch):
    """ultralytics names a YAML-built model's export after the YAML and writes it into the
    current folder: a user's own yolov8n.onnx there must survive an export elsewhere."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    mine = cwd / "yolov8n.onnx"
    mine.write_bytes(b"the user's own file")
    monkeypatch.chdir(cwd)
    result = export_model(ExportConfig(runs["yolov8"], "onnx", tmp_path / "out"))
    assert result.file == tmp_path / "out" / "model.onnx" and result.file.is_file()
    assert sorted(p.name for p in cwd.iterdir()) == ["yolov8n.onnx"]
    assert mine.read_bytes() == b"the user's own file"
