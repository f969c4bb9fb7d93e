"""Faults of the output side: a full disk or a read-only OUT is one line in convert and
synth, and a convert killed with SIGKILL leaves no worker holding OUT's lock (issue 21,
items 7 and 10)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.hostile import one_line_error, run_cli

REPO = Path(__file__).resolve().parents[2]


def _fail_writes(monkeypatch: pytest.MonkeyPatch, under: Path, code: int,
                 suffix: str = "") -> list[str]:
    """Make every ``Path.write_bytes``/``mkdir`` under ``under`` (of a name ending in
    ``suffix``) fail with ``code``, as a full or read-only disk would."""
    failed: list[str] = []
    write_bytes, mkdir = Path.write_bytes, Path.mkdir

    def hit(path: Path) -> bool:  # an atomic write's temporary name holds the suffix too
        return str(path).startswith(str(under)) and suffix in path.name

    def failing_write(self: Path, data: bytes) -> int:  # type: ignore[override]
        if hit(self):
            failed.append(str(self))
            raise OSError(code, os.strerror(code), str(self))
        return write_bytes(self, data)

    def failing_mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if hit(self) and not suffix:
            failed.append(str(self))
            raise OSError(code, os.strerror(code), str(self))
        mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_bytes", failing_write)
    monkeypatch.setattr(Path, "mkdir", failing_mkdir)
    return failed


def test_a_full_disk_during_convert_is_one_line(small_cohort, tmp_path, monkeypatch):
    out = tmp_path / "ds"
    failed = _fail_writes(monkeypatch, out / "images", errno.ENOSPC, suffix=".png")
    line = one_line_error(
        run_cli("convert", small_cohort.dicom_root, small_cohort.annotation_root, out,
                "--workers", "1"),
        "No space left on device", "the disk is full",
    )
    assert failed and "Traceback" not in line
    assert not (out / "dataset.json").exists()


def test_a_read_only_out_is_one_line_in_convert_and_synth(small_cohort, tmp_path, monkeypatch):
    out = tmp_path / "ro"
    _fail_writes(monkeypatch, out, errno.EROFS)
    one_line_error(run_cli("convert", small_cohort.dicom_root, small_cohort.annotation_root,
                           out / "ds", "--workers", "1"), "read-only")
    one_line_error(run_cli("synth", out / "cohort", "--patients", "1", "--slices", "4",
                           "--size", "32"), "read-only")


def test_a_full_disk_during_synth_is_one_line(tmp_path, monkeypatch):
    out = tmp_path / "cohort"
    out.mkdir()
    failed = _fail_writes(monkeypatch, out, errno.ENOSPC, suffix=".dcm")
    one_line_error(run_cli("synth", out, "--patients", "1", "--slices", "4", "--size", "32"),
                   "the disk is full")
    assert failed


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found.update(int(c) for c in text.split())
    except OSError:
        pass
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie is dead; only its parent (here: init) may reap it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_convert_leaves_no_worker_holding_the_lock(cohort, tmp_path):
    out = tmp_path / "ds"
    code = "import sys; from detect.cli import main; sys.argv[0] = 'detect'; main()"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    parent = subprocess.Popen(
        [sys.executable, "-c", code, "convert", str(cohort.dicom_root),
         str(cohort.annotation_root), str(out), "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    while not workers and parent.poll() is None and time.monotonic() < deadline:
        workers = _children(parent.pid) - {parent.pid}
        time.sleep(0.002)
    assert workers, "convert ended before it started a worker; nothing to test"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=60)
    deadline = time.monotonic() + 20
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [pid for pid in workers if _running(pid)]
    for pid in alive:  # the test's own mess: never leave them behind
        os.kill(pid, signal.SIGKILL)
    assert alive == [], "workers outlived their convert"
    done = run_cli("convert", cohort.dicom_root, cohort.annotation_root, out, "--workers", "1")
    assert done.exit_code == 0, done.output
