"""YOLO networks built by detect from ultralytics' bundled architecture YAMLs, never from a
checkpoint: a checkpoint only ever contributes tensors and class names
(:mod:`detect.models.yolo.checkpoint`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402  (after the check, so a broken pair fails with one line)
import yaml  # noqa: E402

from detect.errors import ConfigError, RunFolderError  # noqa: E402
from detect.models.yolo.config import SIZES  # noqa: E402
from detect.models.yolo.env import prepare_ultralytics  # noqa: E402


def architecture_yaml(family: str, size: str) -> str:
    """``yolov8n.yaml`` / ``yolo26s.yaml``: ultralytics' bundled architecture files (the
    family name comes from the registry, which knows only families ultralytics has)."""
    if size not in SIZES:
        raise ConfigError(f"YOLO size must be one of {', '.join(SIZES)}, got {size!r}")
    return f"{family}{size}.yaml"


def architecture(family: str, size: str) -> dict[str, Any]:
    """The bundled architecture of ``family`` ``size`` as ultralytics reads it."""
    prepare_ultralytics()
    from ultralytics.nn.tasks import yaml_model_load

    return dict(yaml_model_load(architecture_yaml(family, size)))


def same_architecture(found: Mapping[str, Any], family: str, size: str) -> bool:
    """Whether an architecture dict (a checkpoint's ``yaml``) is the bundled one of
    ``family`` ``size``, apart from the class count and ultralytics' bookkeeping keys."""
    expected = architecture(family, size)
    strip = ("nc", "yaml_file", "channels")  # scale stays: it must be the size's

    def core(data: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in data.items() if k not in strip}

    return found.get("channels", 3) == 3 and core(found) == core(expected)


def build_network(family: str, size: str, names: Sequence[str]) -> Any:
    """A fresh ``DetectionModel`` of ``family`` ``size`` for ``names`` (its class count),
    from ultralytics' bundled YAML; weights as initialised."""
    prepare_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    net = DetectionModel(architecture_yaml(family, size), nc=len(names), verbose=False)
    net.names = dict(enumerate(names))
    return net


def mismatches(net: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """How ``state`` differs from ``net``'s own state dict: missing, unexpected and
    other-shape names (empty: it fits exactly)."""
    own = net.state_dict()
    found = [f"missing {k}" for k in own if k not in state]
    found += [f"unexpected {k}" for k in state if k not in own]
    found += [f"{k} {tuple(state[k].shape)} instead of {tuple(v.shape)}"
              for k, v in own.items() if k in state and state[k].shape != v.shape]
    return found


def load_exactly(net: torch.nn.Module, state: Mapping[str, torch.Tensor], source: Path,
                 what: str) -> None:
    """Load ``state`` into ``net``; every name and shape must match.

    Raises:
        RunFolderError: it does not fit (how many tensors differ, and the first).
    """
    differences = mismatches(net, state)
    if differences:
        raise RunFolderError(
            f"{source} does not hold {what} ({len(differences)} tensors differ, first: "
            f"{differences[0]}); pass the weights of this run, or fix model.json"
        )
    net.load_state_dict(dict(state), strict=True)


def load_matching(net: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> int:
    """Load the tensors of ``state`` whose name and shape ``net`` has (fine-tuning from
    weights of another class count or size); returns how many were loaded."""
    own = net.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    net.load_state_dict(fitting, strict=False)
    return len(fitting)


def write_architecture(folder: Path, family: str, size: str, classes: int) -> Path:
    """``folder/<family><size>.yaml``: the bundled architecture with ``nc`` = ``classes``,
    for ultralytics' public ``YOLO(yaml)`` (the file name keeps the size letter, which
    ultralytics reads from it)."""
    content = {k: v for k, v in architecture(family, size).items()
               if k not in ("yaml_file", "scale")}
    content["nc"] = classes
    path = folder / architecture_yaml(family, size)
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path
