"""Whose files are in ``detect export``'s OUT (the rule of every command,
:mod:`detect.io.replacing`).

An export folder is known by its model.json's ``export`` section (only ``detect export``
writes one). A new or empty folder is taken; an export folder is refused unless
``--overwrite``, which deletes the files export writes (:data:`FILES`, whichever are
there) and says which export it replaced; a folder with any other model.json (a
training run's) or other files is refused, with or without ``--overwrite``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from detect.errors import OutputFolderError
from detect.io.replacing import announce_replacement, refuse_existing, written_on
from detect.runs import MODEL_JSON

#: Every file ``detect export`` writes into OUT (the exported model is one of the first two).
FILES = ("model.onnx", "model.torchscript", MODEL_JSON, "README.md", "CARD.md")


def _export_section(out: Path) -> dict[str, Any] | None:
    """model.json's ``export`` section, or None when there is none (or no model.json)."""
    try:
        data = json.loads((out / MODEL_JSON).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    section = data.get("export") if isinstance(data, dict) else None
    return section if isinstance(section, dict) else None


def _describe(out: Path, export: dict[str, Any]) -> str:
    """An export in words: its format, date, source run and file checksum."""
    source = export.get("source") if isinstance(export.get("source"), dict) else {}
    run = (source or {}).get("run")
    about = [f"of {run}"] if run else []
    if export.get("sha256"):
        about.append(f"{export.get('file')} sha256 {str(export['sha256'])[:12]}")
    detail = f" ({', '.join(about)})" if about else ""
    return f"the {export.get('format', '')} export of {written_on(out / MODEL_JSON)}{detail}"


def choose_export_out(out: Path | None, fmt: str, overwrite: bool = False) -> Path:
    """``--out`` as given (the module docstring's rule; with ``overwrite`` an earlier
    export's files are deleted here, and a warning names it), or a fresh
    ``export-<format>``, ``export-<format>-2``... in the working folder; created.

    Raises:
        OutputFolderError: a file, an export without ``overwrite``, a folder of other
            files (a training run's model.json included), or one that cannot be created.
    """
    if out is None:
        out, number = Path(f"export-{fmt}"), 1
        while out.exists():
            number += 1
            out = Path(f"export-{fmt}-{number}")
    elif out.exists() and not out.is_dir():
        raise OutputFolderError(f"--out {out} is a file; pass a folder")
    elif out.is_dir():
        _take(out, overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFolderError(
            f"cannot create output folder {out} ({exc.strerror}); pass --out to a folder you "
            f"can write"
        ) from None
    return out


def _take(out: Path, overwrite: bool) -> None:
    export = _export_section(out)
    if export is not None:
        what = _describe(out, export)
        if not overwrite:
            raise refuse_existing(out, what)
        removed = 0
        for name in FILES:
            path = out / name
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed += 1
        announce_replacement(out, what, f"its {removed} files deleted")
    if (out / MODEL_JSON).exists():
        raise OutputFolderError(f"--out {out} holds a model.json that detect export did not "
                                f"write (a training run?); pass another --out")
    try:
        others = sorted(os.listdir(out))
    except OSError as exc:
        raise OutputFolderError(f"cannot list --out {out} ({exc.strerror})") from None
    if others and export is None:
        raise OutputFolderError(
            f"--out {out} is not empty ({len(others)} entries, e.g. {others[0]!r}) and was "
            f"not written by detect export; pass a new or empty folder")
