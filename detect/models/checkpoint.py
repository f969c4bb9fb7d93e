"""Reading and writing torch checkpoints safely.

Every checkpoint detect reads from a user is opened with ``torch.load(weights_only=True)``:
tensors and primitive containers only, no pickled classes, so a crafted file cannot run
code. detect's own checkpoints (Faster R-CNN, the histology head) hold nothing else. A file
that names anything more (a class, a function such as ``os.system``) is refused with that
name: ``refused: best.pt holds posix.system, which a detect checkpoint never needs``.
YOLO checkpoints, which are pickled ultralytics models, have their own reader
(:mod:`detect.models.yolo.checkpoint`) built on :func:`pickled_globals` and
:func:`global_in_refusal`.
"""

from __future__ import annotations

import contextlib
import pickle
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from detect.errors import ConfigError
from detect.io.atomic import atomic_path
from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402  (after the check, so a broken pair fails with one line)

_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)|unrecognized function <?([\w.]+)")


SafeGlobal = Callable[..., Any] | tuple[Callable[..., Any], str]


@contextlib.contextmanager
def only_these_globals(entries: Sequence[SafeGlobal] = ()) -> Iterator[None]:
    """Inside, torch's weights-only allowlist is its own defaults plus exactly ``entries``:
    classes another library registered process-wide (ultralytics' safe loader registers
    its model classes) are set aside and put back afterwards."""
    serialization = torch.serialization
    before = serialization.get_safe_globals()
    serialization.clear_safe_globals()
    serialization.add_safe_globals(list(entries))
    try:
        yield
    finally:
        serialization.clear_safe_globals()
        serialization.add_safe_globals(before)


def pickled_globals(path: Path) -> list[str]:
    """The globals (``module.name``) a torch checkpoint's pickle references beyond torch's
    weights-only allowlist (its defaults and what is registered: call it inside
    :func:`only_these_globals`); [] when the file is not a torch zip archive (the loader
    then says what it is)."""
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a zip archive, a truncated one...: torch.load reports it
        return []


def global_in_refusal(exc: BaseException) -> str | None:
    """The global a weights-only load refused, from torch's message (None: another fault)."""
    if not isinstance(exc, pickle.UnpicklingError):
        return None
    found = _REFUSED_GLOBAL.search(str(exc))
    return next((g for g in found.groups() if g), None) if found else None


def load_fault(exc: BaseException) -> str:
    """A short description of why ``torch.load`` failed: the weights-only unpickler's own
    reason (never torch's advice to retry with ``weights_only=False``), else the first line."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first[:160]}" if first else type(exc).__name__


def refused(path: Path, name: str, what: str = "a detect checkpoint") -> str:
    """The one-line refusal of a checkpoint that references ``name``."""
    return f"refused: {path} holds {name}, which {what} never needs; it was not loaded"


def read_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` on the CPU, as a dict.

    Raises:
        ConfigError: missing, refused (it names a global: ``refused: ...``), or not a
            weights-only loadable dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"--weights {path} is not a file; pass a local checkpoint (nothing is downloaded)"
        )
    try:
        with only_these_globals():
            unknown = pickled_globals(path)
            if unknown:
                raise ConfigError(refused(path, unknown[0]) + " (only tensors and plain "
                                  "values are read; pass a torchvision state_dict or a "
                                  "detect last.pt/best.pt)")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except ConfigError:
        raise
    except Exception as exc:  # pickle, zip and torch errors all mean "not a checkpoint"
        name = global_in_refusal(exc)
        if name is not None:
            raise ConfigError(refused(path, name)) from None
        raise ConfigError(
            f"--weights {path} is not a weights-only torch checkpoint ({load_fault(exc)}); "
            f"pass a torchvision state_dict or a detect last.pt/best.pt"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"--weights {path}: expected a dict of tensors, got {type(data).__name__}"
        )
    return data


def state_dict_of(data: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The model state dict inside a checkpoint: detect's ``{"model": ...}`` or a plain
    torchvision state dict (``{"model": ...}`` of torchvision's references works too)."""
    inner = data.get("model")
    source = inner if isinstance(inner, Mapping) else data
    return {k: v for k, v in source.items() if isinstance(v, torch.Tensor)}


def save_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    """``torch.save`` of a plain dict, atomically (never half a file)."""
    with atomic_path(path) as tmp:
        torch.save(dict(payload), tmp)
