"""The environment around YOLO: torch check, offline ultralytics, train options, sampling."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.yolo import make_tiny_dataset, run_fresh_python
from typer.testing import CliRunner

from detect.cli import app
from detect.dataset import load_dataset
from detect.errors import ConfigError, EnvironmentProblem
from detect.models.yolo.run import repeat_factors, run_sampling, write_run_data
from detect.torch_check import FIX_COMMAND, main, require_working_torch
from detect.train import TrainConfig

runner = CliRunner()


@pytest.mark.parametrize(
    "failure",
    [
        OSError("libc10_cuda.so: cannot open shared object file: No such file or directory"),
        RuntimeError("operator torchvision::nms does not exist"),
        ImportError("cannot import name '_C' from 'torchvision'"),
    ],
)
def test_broken_torch_pair_is_one_line_with_versions_and_fix(failure):
    def probe() -> None:
        raise failure

    with pytest.raises(EnvironmentProblem) as caught:
        require_working_torch(probe=probe)
    message = str(caught.value)
    assert "\n" not in message
    assert "torch 2.14.1 and torchvision 0.29.1 do not work together" in message
    assert str(failure).splitlines()[0] in message
    assert message.endswith(f"fix: {FIX_COMMAND}")
    assert FIX_COMMAND == "pip install torch==2.14.1 torchvision==0.29.1"


def test_working_pair_passes_and_module_entry_point_says_so(capsys, monkeypatch):
    require_working_torch()
    assert main([]) == 0
    assert "ops load" in capsys.readouterr().out
    monkeypatch.setattr("detect.torch_check._probe", lambda: (_ for _ in ()).throw(
        RuntimeError("operator torchvision::nms does not exist")))
    assert main([]) == 1
    assert FIX_COMMAND in capsys.readouterr().err


def test_train_with_broken_torch_fails_before_any_work(monkeypatch, tmp_path):
    def broken() -> None:
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr("detect.torch_check._probe", broken)
    done = runner.invoke(app, ["train", "--model", "yolov8", "--data", str(tmp_path),
                               "--project", str(tmp_path / "runs")])
    assert done.exit_code == 1
    assert len(done.output.strip().splitlines()) == 1 and FIX_COMMAND in done.output
    assert not (tmp_path / "runs").exists()


def test_ultralytics_runs_from_detects_own_offline_config(tiny_run, yolo_env):

    from ultralytics import settings
    from ultralytics.utils import USER_CONFIG_DIR

    assert os.environ.get("YOLO_OFFLINE") == "1"
    config_dir = Path(os.environ["YOLO_CONFIG_DIR"])
    assert config_dir.name == "detect" and Path(USER_CONFIG_DIR) == config_dir / "Ultralytics"
    assert (Path(USER_CONFIG_DIR) / "Arial.ttf").stat().st_size > 100_000  # no fetch needed
    assert settings["sync"] is False and settings["mlflow"] is False


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"model": "yolov9"}, "--model must be one of"),
        ({"size": "xl"}, "--size must be one of"),
        ({"imgsz": 100}, "multiple of 32"),
        ({"epochs": 0}, "--epochs must be >= 1"),
        ({"device": "cuda"}, "--device must be"),
        ({"class_weighting": "focal"}, "--class-weighting must be one of"),
        ({"weights": Path("missing.pt")}, "nothing is downloaded"),
        ({"name": "../escape"}, "plain folder name"),
        ({"nbs": 0}, "--nbs must be >= 1"),
        ({"model": "fasterrcnn", "nbs": 16}, "--nbs is for --model yolov8, yolo11, yolo26, not"),
        ({"model": "histology", "optimizer": "SGD"}, "--optimizer is for --model yolov8, yolo11"),
        ({"model": "histology", "amp": "bf16"}, "--amp is for --model yolov8, yolo11, yolo26, fa"),
        ({"model": "yolo26", "backbone": "resnet18"}, "--backbone is for --model fasterrcnn, hi"),
        ({"optimizer": "adam"}, "--optimizer must be one of"),
        ({"optimizer": "AdamW", "lr0": float("nan")}, r"--lr0 must be in \(0, 1\]"),
        ({"optimizer": "SGD", "lr0": 0.0}, r"--lr0 must be in \(0, 1\]"),
        ({"lr0": 0.01}, "--lr0 needs --optimizer"),
        ({"mosaic": 1.5}, r"--mosaic must be a probability in \[0, 1\]"),
    ],
)
def test_train_config_is_validated(options, expected, tmp_path):
    arguments = {"model": "yolov8", "data": tmp_path, **options}
    with pytest.raises(ConfigError, match=expected):
        TrainConfig(**arguments)


def test_cli_train_errors_are_one_line(tmp_path):
    dataset = make_tiny_dataset(tmp_path / "ds")
    for args, expected in [
        (["--model", "histology", "--backbone", "resnet50_fpn_v2"],
         "--backbone for --model histology"),
        (["--model", "yolov8", "--weights", str(tmp_path / "nope.pt")], "is not a file"),
        (["--model", "yolov8", "--device", "3"], "torch sees"),
    ]:
        done = runner.invoke(app, ["train", "--data", str(dataset), "--project",
                                   str(tmp_path / "runs"), *args])
        assert done.exit_code == 1, done.output
        assert len(done.output.strip().splitlines()) == 1 and expected in done.output
    assert not (tmp_path / "runs").exists()
    shutil.rmtree(dataset / "images" / "val")
    done = runner.invoke(app, ["train", "--model", "yolov8", "--data", str(dataset)])
    assert done.exit_code == 1 and "no images in images/val" in done.output


def test_repeat_factors_follow_square_root_sampling():
    images = {Path(f"a{i}.png"): {0} for i in range(49)}
    images |= {Path("e.png"): {2}, Path("ae.png"): {0, 2}, Path("negative.png"): set()}
    repeats = repeat_factors(images)
    # f_A = 50 images, f_E = 2 images: r_E = sqrt(50 / 2) = 5
    assert repeats[Path("e.png")] == 5 and repeats[Path("ae.png")] == 5
    assert repeats[Path("a0.png")] == 1 and repeats[Path("negative.png")] == 1


def test_sampler_writes_a_balanced_train_list_for_ultralytics(tmp_path):
    dataset_root = make_tiny_dataset(tmp_path / "ds")
    for label in (dataset_root / "labels" / "train").glob("*.txt"):  # make E rare: one image
        if label.read_text().startswith("2 ") and label.stem.startswith("E0007"):
            label.write_text("0" + label.read_text()[1:])
    dataset = load_dataset(dataset_root)
    run = tmp_path / "run"
    run.mkdir()
    data_yaml, sampling = write_run_data(run, dataset, "sampler"), run_sampling(dataset, "sampler")
    content = yaml.safe_load(data_yaml.read_text())
    listing = Path(content["train"]).read_text().split()
    assert content["val"] == "images/val"  # validation is never resampled
    assert sampling == {"mode": "sampler", "images": 8, "listed": len(listing),
                        "list": "train-balanced.txt"}
    rare = [line for line in listing if Path(line).name.startswith("E0003")]
    assert len(rare) == 2  # f_A = 3, f_E = 1: round(sqrt(3)) = 2 copies
    assert all(Path(line).is_file() for line in listing)


def test_help_imports_neither_torch_nor_ultralytics():
    code = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from detect.cli import app\n"
        "for args in (['--help'], ['train', '--help'], ['predict', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
        "print(json.dumps([m for m in ('torch', 'ultralytics') if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_default_training_size_is_the_dataset_size_on_the_stride(tmp_path):
    from detect.dataset import DatasetInfo
    from detect.models.training import training_imgsz

    sizes = {96: 96, 100: 128, 512: 512, 20: 32}
    for native, expected in sizes.items():
        dataset = DatasetInfo(tmp_path, {"image_size": native})
        assert training_imgsz(None, dataset.image_size) == expected


def test_shared_yolo_decoding_needs_neither_torch_nor_ultralytics(tmp_path: Path):
    # An exported YOLO (ONNX) runs in the base install, which has neither.
    code = (
        "import sys, numpy as np\n"
        "from detect.models.yolo.decode import decode_output, model_input\n"
        "batch = model_input([np.zeros((40, 30, 3), np.uint8)], 64)\n"
        "raw = np.zeros((1, 5, 84), np.float32)\n"
        "found = decode_output(raw, [np.zeros((40, 30, 3), np.uint8)], (64, 64), nc=1,\n"
        "                      conf=0.25, iou=0.7)\n"
        "print(batch.shape, len(found[0]), sorted(m for m in ('torch', 'ultralytics', 'cv2')\n"
        "                                         if m in sys.modules))\n"
    )
    done = run_fresh_python(code, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(1, 3, 64, 64) 0 []"


def test_ultralytics_calls_give_torch_its_threads_back(tmp_path):
    """ultralytics' select_device sets torch to CPUs - 1 threads for the whole process;
    after a YOLO training the next training in the process ran on half of 2 cores."""
    import torch

    from detect.models.yolo.train import YoloTrainSpec, train_yolo

    class SelectsTheCpu:
        """A YOLO whose train() does what ultralytics' trainer does first."""

        def add_callback(self, *_: object) -> None:
            pass

        def train(self, **_: object) -> None:
            from ultralytics.utils.torch_utils import select_device

            select_device("cpu", verbose=False)
            raise RuntimeError("stopped after select_device")

    spec = YoloTrainSpec(family="yolov8", size="n", data_yaml=tmp_path / "d.yaml",
                         run_dir=tmp_path, epochs=1, imgsz=64, batch=1, device="cpu", seed=0,
                         workers=0, weights=None, cls_pw=1.0, amp="off")
    from ultralytics.utils import NUM_THREADS

    before, ours = torch.get_num_threads(), NUM_THREADS + 1  # never what ultralytics sets
    try:
        torch.set_num_threads(ours)
        with pytest.raises(RuntimeError, match="stopped after select_device"):
            train_yolo(SelectsTheCpu(), spec)
        assert torch.get_num_threads() == ours
    finally:
        torch.set_num_threads(before)
