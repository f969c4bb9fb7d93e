"""``--device``: its syntax (checked without torch), what it resolves to on this machine,
and deterministic CPU kernels for training."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from detect.errors import ConfigError

_DEVICE = re.compile(r"^(auto|cpu|\d+(,\d+)*)$")


def check_device_spec(spec: str) -> str:
    """Validate ``--device`` syntax (``auto``, ``cpu``, ``0`` or ``0,1``); no torch import.

    Raises:
        ConfigError: anything else.
    """
    text = spec.strip().lower()
    if not _DEVICE.match(text):
        raise ConfigError(
            f"--device must be auto, cpu, a GPU index (0) or a list (0,1), got {spec!r}"
        )
    return text


def resolve_device(spec: str) -> str:
    """``auto`` → ``0`` when CUDA is available, else ``cpu``; GPU indices are checked.

    Returns the spec in ultralytics' form (``cpu``, ``0``, ``0,1``).

    Raises:
        ConfigError: a GPU is asked for and torch sees none, or not that many.
    """
    import torch

    text = check_device_spec(spec)
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if text == "auto":
        return "0" if available else "cpu"
    if text == "cpu":
        return text
    wanted = [int(i) for i in text.split(",")]
    if max(wanted) >= available:
        raise ConfigError(
            f"--device {spec} asks for CUDA GPU {max(wanted)}, but torch sees {available} GPU(s); "
            f"use --device cpu or --device auto"
        )
    return text


def torch_device(spec: str) -> str:
    """The torch device string for inference on one device (first GPU of a list)."""
    resolved = resolve_device(spec)
    return "cpu" if resolved == "cpu" else f"cuda:{resolved.split(',')[0]}"


@contextmanager
def deterministic(enabled: bool, device: Any) -> Iterator[None]:
    """Deterministic torch kernels on the CPU while training (restored afterwards)."""
    import torch

    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled and torch.device(device).type == "cpu")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def default_workers() -> int:
    """Worker processes: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
