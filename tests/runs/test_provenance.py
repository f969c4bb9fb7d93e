"""model.json ``provenance`` (git commit, hardware, initial weights' SHA-256), one meaning
of metrics.csv ``time_s`` for every family, and the TensorBoard log (on only when the
``tensorboard`` package is installed)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import ClassVar

import pytest

from detect.runs.board import TB_DIR, EpochBoard, tensorboard_available
from detect.runs.provenance import file_sha256, hardware, provenance, source_commit

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


@needs_git
def test_the_commit_of_a_checkout_and_whether_it_is_dirty(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "a.py")
    _git(tmp_path, "commit", "-q", "-m", "one")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert source_commit(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "new.txt").write_text("untracked files do not count")
    assert source_commit(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "a.py").write_text("x = 2\n")
    assert source_commit(tmp_path) == {"commit": head, "dirty": True}


def test_no_checkout_no_commit(tmp_path):
    assert source_commit(tmp_path) is None


def test_hardware_and_weights_checksum(tmp_path):
    found = hardware()
    assert found["cpu"]["count"] == os.cpu_count()
    assert 1 <= found["cpu"]["usable"] <= found["cpu"]["count"]
    assert isinstance(found["cpu"]["model"], str) and found["cpu"]["model"]
    assert found["gpu"]["count"] >= len(found["gpu"]["models"])
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"\x00" * 3_000_000 + b"end")
    assert file_sha256(weights) == hashlib.sha256(weights.read_bytes()).hexdigest()
    record = provenance(weights, tensorboard=False)
    assert record["initial_weights"] == {"path": str(weights.resolve()),
                                         "sha256": file_sha256(weights)}
    assert provenance(None, tensorboard=False)["initial_weights"] is None


def test_yolo_time_is_per_epoch_also_across_a_resume(tmp_path):
    from detect.models.yolo.train import read_results

    header = "epoch,time,metrics/mAP50(B)\n"
    # ultralytics: seconds since training started; its clock restarts after a resume
    (tmp_path / "results.csv").write_text(header + "1,10.0,0.1\n2,25.0,0.2\n3,7.5,0.3\n"
                                                   "4,20.0,0.4\n")
    times = [row["time_s"] for row in read_results(tmp_path)]
    assert times == pytest.approx([10.0, 15.0, 7.5, 12.5])


class _Writer:
    """A stand-in for torch's SummaryWriter (records what it is given)."""

    made: ClassVar[list[_Writer]] = []

    def __init__(self, log_dir: str) -> None:
        self.log_dir, self.scalars, self.closed = log_dir, [], False
        Path(log_dir).mkdir(parents=True)
        _Writer.made.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_epoch_rows_become_scalars_once_each(tmp_path, monkeypatch):
    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = _Writer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    monkeypatch.setattr("detect.runs.board.tensorboard_available", lambda: True)
    _Writer.made.clear()
    board = EpochBoard(tmp_path / "run", after=1)
    assert not (tmp_path / "run").exists()  # nothing before the first logged epoch
    rows = [{"epoch": 1, "mAP50": 0.1}, {"epoch": 2, "mAP50": 0.2, "time_s": 3.0,
                                         "note": "text", "loss": float("nan")}]
    board.log(rows)
    board.log([*rows, {"epoch": 3, "mAP50": 0.3}])
    board.close()
    (writer,) = _Writer.made
    assert writer.log_dir == str(tmp_path / "run" / TB_DIR) and writer.closed
    assert writer.scalars == [("mAP50", 0.2, 2), ("time_s", 3.0, 2), ("mAP50", 0.3, 3)]


@pytest.mark.skipif(tensorboard_available(), reason="tensorboard is installed here")
def test_without_tensorboard_there_is_no_log(tmp_path):
    board = EpochBoard(tmp_path / "run")
    board.log([{"epoch": 1, "mAP50": 0.5}])
    board.close()
    assert not (tmp_path / "run").exists() and not board.enabled


@pytest.mark.skipif(not tensorboard_available(), reason="tensorboard is not installed")
def test_with_tensorboard_the_log_reads_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EpochBoard(tmp_path / "run")
    board.log([{"epoch": 1, "mAP50": 0.25}, {"epoch": 2, "mAP50": 0.5}])
    board.close()
    events = EventAccumulator(str(tmp_path / "run" / TB_DIR))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("mAP50")] == [(1, 0.25), (2, 0.5)]
