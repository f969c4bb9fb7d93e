"""What every training family does the same way: seeding, and resuming a run folder."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from detect.dataset import DatasetInfo
from detect.errors import ConfigError
from detect.runs import now_iso, read_model_json, write_model_json

#: Options saved in model.json ``args`` as strings that are paths again on resume.
PATH_OPTIONS = ("data", "weights", "project")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resumable_manifest(run_dir: Path, dataset: DatasetInfo, family: str) -> dict[str, Any]:
    """model.json of the run ``--resume`` continues, after checking it can be continued.

    Raises:
        ConfigError: the run is of another family, finished, or of another dataset.
        RunFolderError: its model.json is missing or invalid.
    """
    info = read_model_json(run_dir)
    if info.family != family:
        raise ConfigError(f"--resume {run_dir}: a {info.family} run, not {family}")
    if info.status == "complete":
        raise ConfigError(
            f"{run_dir} finished training; nothing to resume (fine-tune it with --weights "
            f"{run_dir / 'weights' / 'last.pt'} in a new run)"
        )
    if info.manifest["dataset"]["fingerprint"] != dataset.fingerprint:
        raise ConfigError(
            f"--resume {run_dir}: it was trained on dataset {info.manifest['dataset']['path']} "
            f"(another dataset.json than {dataset.root}); resume with the same --data"
        )
    return dict(info.manifest)


def saved_options(manifest: Mapping[str, Any], config_type: type) -> dict[str, Any]:
    """The options of ``config_type`` (a dataclass) saved in model.json ``args``, with
    paths as :class:`~pathlib.Path` again."""
    known = {f.name for f in fields(config_type)}
    saved = {k: v for k, v in manifest.get("args", {}).items() if k in known}
    for key in PATH_OPTIONS:
        if saved.get(key) is not None:
            saved[key] = Path(saved[key])
    return saved


def mark_resumed(run_dir: Path) -> dict[str, Any]:
    """Add this moment to model.json's ``args.resumed`` list; returns the manifest."""
    data = dict(read_model_json(run_dir).manifest)
    data["args"]["resumed"] = [*data["args"].get("resumed", []), now_iso()]
    write_model_json(run_dir, data)
    return data
