"""Where runs live: choosing a new run folder (never overwriting one), finding the run to
resume, and resolving what ``--weights`` names."""

from __future__ import annotations

import logging
from pathlib import Path

from detect.errors import ConfigError, RunFolderError
from detect.runs.manifest import MODEL_JSON, ModelInfo, read_model_json

log = logging.getLogger(__name__)


def _run_of_weights(weights: Path) -> Path | None:
    for folder in (weights.parent, weights.parent.parent):
        if (folder / MODEL_JSON).is_file():
            return folder
    return None


def resolve_weights(weights: Path) -> tuple[ModelInfo, Path]:
    """What ``--weights W`` names: a run folder, its model.json, or a weights file inside
    a run folder (model.json beside it or one folder up). Returns the model info and the
    weights file to load (the run's best weights unless a file was named).

    Raises:
        RunFolderError: W does not exist, is not inside a run folder, or its weights file
            is missing.
    """
    weights = Path(weights)
    if not weights.exists():
        raise RunFolderError(f"--weights {weights} does not exist; pass a run folder or its .pt")
    if weights.is_dir() or weights.name == MODEL_JSON:
        info = read_model_json(weights)
        chosen = info.weights_path("best")
    else:
        run = _run_of_weights(weights.resolve())
        if run is None:
            raise RunFolderError(
                f"{weights} is not a detect model: no model.json beside it or one folder up; "
                f"pass the run folder written by detect train"
            )
        info = read_model_json(run)
        chosen = weights
    if not chosen.is_file():
        raise RunFolderError(
            f"{info.root}: weights file {chosen.name} is missing (training not finished or "
            f"files moved); pass another run or weights file"
        )
    return info, chosen


def choose_run_dir(project: Path, family: str, name: str | None, resume: bool) -> Path:
    """The run folder of ``detect train``: a fresh ``project/family/<name>`` (never
    overwritten, see :func:`unique_run_dir`), or with ``resume`` the named run, or the
    latest one, that has ``weights/last.pt``.

    Raises:
        ConfigError: ``--resume`` finds no run with ``weights/last.pt``.
    """
    if not resume:
        return unique_run_dir(project, family, name or "train")
    if name is not None:
        run = project / family / name
        if not (run / "weights" / "last.pt").is_file():
            raise ConfigError(f"--resume: no {run}/weights/last.pt; check --project and --name")
        return run
    found = latest_run(project, family)
    if found is None:
        raise ConfigError(f"--resume: no run with weights/last.pt under {project / family}")
    return found


def unique_run_dir(project: Path, family: str, name: str) -> Path:
    """``project/family/name``, or ``name-2``, ``name-3``... when that already exists
    (an existing run is never overwritten: the one rule of output folders,
    :mod:`detect.io.replacing`, has no ``--overwrite`` for trained models), saying so in
    a warning."""
    base = project / family
    candidate, number = base / name, 1
    while candidate.exists():
        number += 1
        candidate = base / f"{name}-{number}"
    if number > 1:
        log.warning("%s exists (a run is never replaced): this run is %s", base / name,
                    candidate)
    return candidate


def latest_run(project: Path, family: str) -> Path | None:
    """The run under ``project/family`` whose ``weights/last.pt`` changed last, if any."""
    base = project / family
    if not base.is_dir():
        return None
    runs = [p for p in base.iterdir() if (p / "weights" / "last.pt").is_file()]
    if not runs:
        return None
    return max(runs, key=lambda p: (p / "weights" / "last.pt").stat().st_mtime_ns)
