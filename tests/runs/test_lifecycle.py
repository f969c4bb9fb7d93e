"""The one life of a run folder (runs.RunFolder): never an existing folder, nothing left by
a start that failed, a folder with a checkpoint kept for --resume, completion atomic."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from detect.errors import ConfigError, OutputFolderError, RunFolderError
from detect.runs import RunFolder, read_model_json

DEMO = Path(__file__).resolve().parents[2] / "weights" / "demo-yolov8n-phantom"


def _manifest() -> dict:
    data = json.loads((DEMO / "model.json").read_text())
    return {**data, "status": "training", "metrics": None}


def test_a_new_run_never_takes_an_existing_folder(tmp_path, caplog):
    first = RunFolder.choose(tmp_path, "yolov8", "exp", resume=False)
    first.start(_manifest())
    with caplog.at_level(logging.WARNING):
        second = RunFolder.choose(tmp_path, "yolov8", "exp", resume=False)
    assert (first.path.name, second.path.name) == ("exp", "exp-2")
    assert [r.getMessage() for r in caplog.records] == [  # said, never silently renamed
        f"{first.path} exists (a run is never replaced): this run is {second.path}"]
    late = RunFolder(first.path, "yolov8", resume=False)  # chosen before the first started
    with pytest.raises(RunFolderError, match="appeared while this run started"):
        late.start(_manifest())
    assert read_model_json(first.path).status == "training"


def test_a_start_that_fails_before_a_checkpoint_leaves_nothing(tmp_path):
    run = RunFolder.choose(tmp_path, "yolov8", None, resume=False)
    with pytest.raises(ValueError, match="engine refused"), run.guarded():
        run.start(_manifest())
        (run.path / "data.yaml").write_text("x")
        raise ValueError("engine refused the dataset")
    assert not run.path.exists() and list((tmp_path / "yolov8").iterdir()) == []
    interrupted = RunFolder.choose(tmp_path, "yolov8", None, resume=False)
    with pytest.raises(KeyboardInterrupt), interrupted.guarded():
        interrupted.start(_manifest())
        raise KeyboardInterrupt
    assert not interrupted.path.exists()


def test_a_run_with_a_checkpoint_stays_resumable(tmp_path):
    run = RunFolder.choose(tmp_path, "yolov8", "exp", resume=False)
    with pytest.raises(KeyboardInterrupt), run.guarded():
        run.start(_manifest())
        (run.path / "weights" / "last.pt").write_bytes(b"epoch 1")
        raise KeyboardInterrupt
    assert (run.path / "weights" / "last.pt").is_file()
    resumed = RunFolder.choose(tmp_path, "yolov8", None, resume=True)
    assert resumed.path == run.path
    with pytest.raises(RuntimeError), resumed.guarded():
        resumed.mark_resumed()
        (run.path / "weights" / "last.pt").unlink()  # even a resume that loses it
        raise RuntimeError("crash")
    assert run.path.is_dir()  # a resumed run's folder is never removed
    assert len(read_model_json(run.path).manifest["args"]["resumed"]) == 1


def test_completion_rewrites_model_json_once(tmp_path):
    run = RunFolder.choose(tmp_path, "yolov8", "exp", resume=False)
    run.start(_manifest())
    run.complete({"epoch": 3, "mAP50": 0.5})
    info = read_model_json(run.path)
    assert info.status == "complete" and info.manifest["metrics"] == {"epoch": 3, "mAP50": 0.5}
    assert "finished" in info.manifest
    assert sorted(p.name for p in run.path.iterdir()) == ["model.json", "weights"]  # no temp
    with pytest.raises(ConfigError, match="finished training; nothing to resume"):
        from detect.dataset import DatasetInfo

        run.resumable(DatasetInfo(tmp_path, {}))


def test_a_project_that_cannot_be_written_is_one_line(tmp_path):
    project = tmp_path / "runs"
    project.write_text("a file where the project folder should be")
    with pytest.raises(OutputFolderError, match=r"cannot create run folder .* pass --project"):
        RunFolder.choose(project, "yolov8", None, resume=False).start(_manifest())
