"""Atomic writes: a file is written under a temporary name in its own folder, then renamed
over the target, so a reader (or a re-run after Ctrl-C) sees the old file or the whole new
one, never half of one. The temporary name is hidden and carries the process id, so
worker processes writing side by side never share one."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on
    an exception it is removed and ``path`` is left as it was. Creates the parent folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any, *, indent: int | None = 1) -> None:
    """Write ``data`` as JSON (and a final newline) to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=indent) + "\n")


def write_json_table(path: Path, head: Mapping[str, Any], key: str,
                     table: Mapping[str, Any]) -> None:
    """Write ``{**head, key: table}`` as compact JSON, atomically, one ``table`` entry at a
    time: a table of a quarter of a million entries is never held as one string, and each
    entry still goes through json's C encoder (``json.dump`` to a file would not)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(dict(head))[:-1])
        handle.write(("," if head else "") + json.dumps(key) + ":{")
        for number, (name, value) in enumerate(table.items()):
            handle.write(("," if number else "") + json.dumps(name) + ":" + json.dumps(value))
        handle.write("}}\n")
