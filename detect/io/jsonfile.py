"""JSON files a user hands us (model.json, dataset.json, predictions.json), read with
limits: a size cap checked before parsing, a nesting cap (Python's parser otherwise ends
in a RecursionError on ``[[[[...``), and no ``NaN``/``Infinity`` constants, each refused
with one line that names the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from detect.errors import DetectError


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply ``value`` nests (a scalar is 0), counted no further than ``limit + 1``."""
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, list):
        items = value
    else:
        return 0
    if limit < 0:
        return 1
    return 1 + max((nesting_depth(v, limit - 1) for v in items), default=0)


#: Nesting cap for detect's own files (dataset.json has 5 levels, predictions.json 3)
DEFAULT_MAX_DEPTH = 16


def read_json(path: Path, *, what: str, max_bytes: int, hint: str,
              max_depth: int = DEFAULT_MAX_DEPTH,
              error: type[DetectError] = DetectError) -> Any:
    """The JSON value in ``path``.

    ``what`` names the file in messages, ``hint`` ends them (what to pass instead).

    Raises:
        error: unreadable, larger than ``max_bytes``, nested deeper than ``max_depth``, a
            NaN/Infinity constant, or not JSON.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{path}: unreadable {what} ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:
        raise error(f"{path}: {what} is larger than {max_bytes / 1e6:g} MB; {hint}")
    too_deep = error(f"{path}: {what} is nested deeper than {max_depth} levels; {hint}")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except RecursionError:
        raise too_deep from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise error(f"{path}: unreadable {what} ({exc})") from None
    if nesting_depth(data, max_depth) > max_depth:
        raise too_deep
    return data
