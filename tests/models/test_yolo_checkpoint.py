"""A crafted YOLO ``.pt`` never runs: predict, eval --weights, export, train --weights and
train --resume refuse it in one line naming what it wanted, before anything in it runs;
the shipped and freshly trained checkpoints still load and give ultralytics' own outputs.
The Faster R-CNN / histology reader says "refused" too."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from support.evaluation import Slice, write_dataset
from support.yolo import NetGuard, make_tiny_dataset, write_ct_series
from typer.testing import CliRunner

from detect.cli import app
from detect.errors import ConfigError, RunFolderError
from detect.models.checkpoint import read_checkpoint
from detect.models.yolo.checkpoint import read_yolo_checkpoint
from detect.models.yolo.env import prepare_ultralytics
from detect.runs import read_model_json

DEMO = Path(__file__).resolve().parents[2] / "weights" / "demo-yolov8n-phantom"


class _Opens:
    """Unpickling it calls ``open(marker, "w")``: the marker file appears."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


class _Shell:
    """Unpickling it runs ``os.system("touch marker")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch '{self.marker}'",))


class _CallsDetectionModel:
    """Unpickling it calls ultralytics' ``DetectionModel`` with a YAML whose activation
    ultralytics ``eval``s: only allowed names, but a call. A checkpoint loaded with
    ``weights_only=True`` and a plain allowlist of YOLO classes would run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        prepare_ultralytics()  # ultralytics reads its switches once, at its first import
        from ultralytics.nn.tasks import DetectionModel

        cfg = {"nc": 1, "activation": f"__import__('pathlib').Path({str(self.marker)!r})"
                                      f".touch() or __import__('torch').nn.SiLU()",
               "backbone": [[-1, 1, "Conv", [16, 3, 2]]],
               "head": [[-1, 1, "Detect", ["nc"]]]}
        return (DetectionModel, (cfg,))


PAYLOADS = {"open": (_Opens, r"holds (builtins|io|_io)\.open"),
            "os.system": (_Shell, r"holds (posix|os|nt)\.system"),
            "constructor": (_CallsDetectionModel, "calls ultralytics.nn.tasks.DetectionModel")}


def _craft(path: Path, payload: str, marker: Path) -> Path:
    kind, _ = PAYLOADS[payload]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": kind(marker), "epoch": 3, "optimizer": {}}, path)
    return path


def _hostile_run(tmp_path: Path, payload: str, marker: Path, *, status: str = "complete"
                 ) -> Path:
    run = tmp_path / "runs" / "yolov8" / "hostile"
    shutil.copytree(DEMO, run)
    data = json.loads((run / "model.json").read_text())
    data["status"] = status
    data["weights"] = {"best": "weights/best.pt", "last": "weights/last.pt"}
    (run / "model.json").write_text(json.dumps(data))
    _craft(run / "weights" / "best.pt", payload, marker)
    _craft(run / "weights" / "last.pt", payload, marker)
    return run


def _one_line_refusal(args: list[str], marker: Path, pattern: str) -> str:
    result = CliRunner().invoke(app, args)
    lines = result.output.strip().splitlines()
    assert not marker.exists(), "the checkpoint's code ran"
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "refused: " in lines[0], lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize("command", ["predict", "eval", "export", "train", "resume"])
def test_a_crafted_checkpoint_never_runs(tmp_path, monkeypatch, yolo_env, command, payload):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    run = _hostile_run(tmp_path, payload, marker,
                       status="training" if command == "resume" else "complete")
    pattern = PAYLOADS[payload][1]
    dataset = make_tiny_dataset(tmp_path / "tiny")
    if command == "predict":
        write_ct_series(tmp_path / "scans", slices=1)
        args = ["predict", str(tmp_path / "scans"), "--weights", str(run), "--out",
                str(tmp_path / "out"), "--device", "cpu"]
    elif command == "eval":
        data = write_dataset(tmp_path / "data", [Slice("A0100", "1", [((10, 10, 30, 30), "A")])],
                             images=True)
        args = ["eval", "--weights", str(run), "--data", str(data.root), "--out",
                str(tmp_path / "eval"), "--device", "cpu"]
    elif command == "export":
        args = ["export", "--weights", str(run), "--format", "onnx", "--out",
                str(tmp_path / "export")]
    elif command == "train":
        args = ["train", "--model", "yolov8", "--data", str(dataset), "--weights",
                str(run / "weights" / "best.pt"), "--epochs", "1", "--imgsz", "64",
                "--device", "cpu", "--workers", "0", "--project", str(tmp_path / "new")]
    else:
        json_path = run / "model.json"
        data = json.loads(json_path.read_text())
        data["dataset"]["fingerprint"] = read_dataset_fingerprint(dataset)
        json_path.write_text(json.dumps(data))
        args = ["train", "--model", "yolov8", "--data", str(dataset), "--resume",
                "--project", str(tmp_path / "runs"), "--name", "hostile", "--device", "cpu",
                "--workers", "0"]
    with NetGuard(monkeypatch):
        _one_line_refusal(args, marker, pattern)
    assert not (tmp_path / "new" / "yolov8").exists()  # refused before a run folder
    assert not (tmp_path / "out").exists()  # predict leaves no empty output folder behind


def read_dataset_fingerprint(dataset: Path) -> str:
    from detect.dataset import load_dataset

    return load_dataset(dataset).fingerprint


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_the_reader_refuses_before_anything_runs(tmp_path, yolo_env, payload):
    marker = tmp_path / "MARKER"
    path = _craft(tmp_path / "w.pt", payload, marker)
    with pytest.raises(RunFolderError, match=r"^refused: "):
        read_yolo_checkpoint(path)
    assert not marker.exists()
    legacy = tmp_path / "legacy.pt"  # the pre-zip pickle format (it pickles module sources)
    torch.save({"model": PAYLOADS[payload][0](marker)}, legacy,
               _use_new_zipfile_serialization=False)
    with pytest.raises(RunFolderError, match=r"^refused: |not a loadable YOLO checkpoint"):
        read_yolo_checkpoint(legacy)
    assert not marker.exists()


def test_faster_rcnn_and_histology_checkpoints_say_refused(tmp_path, yolo_env):
    marker = tmp_path / "MARKER"
    path = _craft(tmp_path / "w.pt", "open", marker)
    with pytest.raises(ConfigError, match=r"^refused: .* holds (builtins|io|_io)\.open"):
        read_checkpoint(path)
    assert not marker.exists()


def test_not_a_checkpoint_never_suggests_weights_only_false(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(RunFolderError, match="not a loadable YOLO checkpoint") as info:
        read_yolo_checkpoint(junk)
    assert "weights_only" not in str(info.value) and "\n" not in str(info.value)


def test_the_shipped_demo_checkpoint_reads_as_tensors_and_names():
    checkpoint = read_yolo_checkpoint(DEMO / "weights" / "best.pt")
    assert checkpoint.names == ("A", "B", "E", "G")
    assert len(checkpoint.state) == 355
    assert all(isinstance(t, torch.Tensor) for t in checkpoint.state.values())
    assert checkpoint.epoch == -1 and not checkpoint.resumable


def _ultralytics_own_outputs(weights: Path, batch: torch.Tensor) -> torch.Tensor:
    """The same trusted file loaded by ultralytics itself (never done in detect)."""
    prepare_ultralytics()
    from ultralytics.nn.tasks import load_checkpoint

    net, _ = load_checkpoint(str(weights))
    net = net.float().eval().fuse(verbose=False)
    with torch.inference_mode():
        out = net(batch)
    return out[0] if isinstance(out, (list, tuple)) else out


@pytest.mark.parametrize("which", ["demo", "fresh"])
def test_trusted_checkpoints_load_and_match_ultralytics(tiny_run, which):
    from detect.models.detector import load_detector

    run = DEMO if which == "demo" else tiny_run[0].run_dir
    info = read_model_json(run)
    detector: Any = load_detector(info, info.weights_path("best"), "cpu")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (info.imgsz, info.imgsz, 3), dtype=np.uint8)
              for _ in range(2)]
    ours, _ = detector.head(images)
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255)
    theirs = _ultralytics_own_outputs(info.weights_path("best"), batch)
    assert ours.shape == tuple(theirs.shape)
    assert torch.allclose(torch.from_numpy(ours).float(), theirs.float(), atol=1e-3, rtol=1e-3)
    found = detector.predict(images, 0.0)
    assert len(found) == 2 and detector.classes == info.classes


def test_classes_registered_by_another_library_never_replace_the_stand_ins(tmp_path, yolo_env):
    """ultralytics' own safe loader registers the real YOLO classes process-wide; a
    crafted constructor call must still be refused, and a real checkpoint still read."""
    prepare_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    before = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([DetectionModel])
    try:
        marker = tmp_path / "MARKER"
        with pytest.raises(RunFolderError, match=r"calls ultralytics\.nn\.tasks\.DetectionModel"):
            read_yolo_checkpoint(_craft(tmp_path / "w.pt", "constructor", marker))
        assert not marker.exists()
        assert read_yolo_checkpoint(DEMO / "weights" / "best.pt").names == ("A", "B", "E", "G")
        assert DetectionModel in torch.serialization.get_safe_globals()  # restored after
        with pytest.raises(ConfigError, match=r"^refused: .* holds torch\.nn\.modules"):
            read_checkpoint(DEMO / "weights" / "best.pt")  # pickled modules: not detect's
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)


@pytest.fixture(scope="module")
def interrupted_run(yolo_env, tiny_dataset, tmp_path_factory):
    """A yolov8n run stopped after its first of two epochs: a resumable last.pt."""
    from detect.train import TrainConfig, train

    def stop(epoch: int, epochs: int, row: object) -> None:
        raise KeyboardInterrupt

    project = tmp_path_factory.mktemp("interrupted")
    config = TrainConfig(model="yolov8", data=tiny_dataset, epochs=2, imgsz=64, batch=4,
                         device="cpu", project=project, workers=0, name="stopped")
    with pytest.raises(KeyboardInterrupt):
        train(config, on_epoch=stop)
    return project / "yolov8" / "stopped"


def _tamper(last: Path, change: str, marker: Path) -> None:
    """Rewrite a (trusted, detect-written) last.pt with one hostile change that keeps to
    the allowed classes: only the resume checks can catch it."""
    ckpt = torch.load(last, map_location="cpu", weights_only=False)  # our own file
    if change == "activation":
        ckpt["ema"].yaml["activation"] = (f"__import__('pathlib').Path({str(marker)!r})"
                                          f".touch() or __import__('torch').nn.SiLU()")
    elif change == "cache":
        ckpt["train_args"]["cache"] = "disk"  # .npy files written beside the dataset
    else:
        ckpt["train_args"]["project"] = str(marker.parent / "elsewhere")
    torch.save(ckpt, last)


@pytest.mark.parametrize(("change", "expected"), [
    ("activation", "describes another network than yolov8n"),
    ("cache", "sets training argument cache to 'disk'"),
    ("project", "sets training argument project to"),
])
def test_resume_refuses_a_last_pt_detect_would_not_have_written(
        interrupted_run, tiny_dataset, tmp_path, monkeypatch, change, expected):
    run = tmp_path / "runs" / "yolov8" / "stopped"
    shutil.copytree(interrupted_run, run)
    marker = tmp_path / "MARKER"
    _tamper(run / "weights" / "last.pt", change, marker)
    args = ["train", "--model", "yolov8", "--data", str(tiny_dataset), "--resume",
            "--project", str(tmp_path / "runs"), "--name", "stopped", "--device", "cpu",
            "--workers", "0"]
    with NetGuard(monkeypatch):
        line = _one_line_refusal(args, marker, re.escape(expected))
    assert "it was not resumed" in line


def test_an_untouched_interrupted_run_passes_the_resume_checks(interrupted_run):
    from detect.models.yolo.train import check_resumable

    checkpoint = read_yolo_checkpoint(interrupted_run / "weights" / "last.pt")
    recorded = read_model_json(interrupted_run).manifest["args"]["ultralytics"]
    check_resumable(checkpoint, "yolov8", "n", interrupted_run, recorded)
    with pytest.raises(ConfigError, match="another network than yolov8s"):
        check_resumable(checkpoint, "yolov8", "s", interrupted_run, recorded)
