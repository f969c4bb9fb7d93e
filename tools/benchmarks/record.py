"""Where every benchmark records its figures: the raw numbers in ``results/<name>.json``
and the printed table as a section appended to RESULTS.md, both stamped with the date and
the machine (the scripts import this module as their sibling)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def machine(device: str | None = None) -> str:
    """The machine as RESULTS.md names it, with the device a run used when it says one."""
    name = f"{platform.machine()} {os.cpu_count()} CPUs"
    return f"{name}, device {device}" if device else name


def arguments(args: argparse.Namespace) -> dict[str, Any]:
    """A script's arguments as JSON values (paths as text)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def record(name: str, heading: str, text: str, result: dict[str, Any], *,
           device: str | None = None) -> dict[str, Any]:
    """Write ``results/<name>.json`` (``result`` with ``date`` and ``machine`` first) and
    append ``## <heading> (<date>, <machine>)`` and ``text`` to RESULTS.md; returns what
    was written."""
    stamp = time.strftime("%Y-%m-%d %H:%M")
    where = machine(device)
    stamped = {"date": stamp, "machine": where, **result}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{name}.json").write_text(json.dumps(stamped, indent=1, default=str))
    with open(HERE / "RESULTS.md", "a") as handle:
        handle.write(f"\n## {heading} ({stamp}, {where})\n\n{text}\n")
    return stamped
