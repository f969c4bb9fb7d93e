"""What a run was made with, beyond the software versions: model.json ``provenance``.

- ``git``: the commit of the detect checkout that trained (``commit``, ``dirty`` when
  tracked files differ from it), or null when detect runs from an installed wheel or git
  is unavailable; read with ``git rev-parse`` in the source tree, a few milliseconds.
- ``hardware``: the CPU model (``/proc/cpuinfo``'s model name, else
  ``platform.processor()``), its logical CPU count and how many this process may use, and
  the GPUs torch sees (model names and count; none on a CPU-only machine).
- ``initial_weights``: the ``--weights`` file a run started from, with its SHA-256, so a
  fine-tuned model names the exact checkpoint it grew from; null for a run from scratch.
- ``tensorboard``: whether the run writes a TensorBoard log to ``RUN/tb/``
  (:mod:`detect.runs.board`).

Recorded when training starts; a resumed run keeps them (its resumption times are in
``args.resumed``).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from detect.device import default_workers
from detect.shipped import source_tree

_GIT_TIMEOUT_S = 10


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git(root: Path, *args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run([git, "-C", str(root), *args], capture_output=True, text=True,
                              timeout=_GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def source_commit(root: Path | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git checkout detect runs from, or None."""
    root = source_tree() if root is None else root
    if not (root / ".git").exists():
        return None
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return None
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def cpu_model() -> str:
    """The CPU's model name, or "unknown"."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def hardware() -> dict[str, Any]:
    """The machine a run trains on (module docstring)."""
    gpus: list[str] = []
    try:
        import torch

        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except (ImportError, RuntimeError):
        pass
    return {
        "cpu": {"model": cpu_model(), "count": os.cpu_count() or 1,
                "usable": default_workers()},
        "gpu": {"models": sorted(set(gpus)), "count": len(gpus)},
        "platform": platform.platform(),
    }


def provenance(initial_weights: Path | None, *, tensorboard: bool) -> dict[str, Any]:
    """model.json ``provenance`` of a run starting now (module docstring)."""
    weights = None
    if initial_weights is not None:
        weights = {"path": str(initial_weights.resolve()),
                   "sha256": file_sha256(initial_weights)}
    return {"git": source_commit(), "hardware": hardware(), "initial_weights": weights,
            "tensorboard": tensorboard}
