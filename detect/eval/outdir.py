"""Whose files are in ``detect eval``'s report folder, and that they describe one run.

The rule of every command (:mod:`detect.io.replacing`): a new or empty folder is taken; a
folder holding a report is refused unless ``--overwrite``, which deletes only the files
eval wrote there and says which report it replaced; a folder of someone else's files is
refused. The bookkeeping is predict's kind:

- ``OUT/.detect-eval.json`` (the marker) says the folder is eval's, ``running`` or
  ``finished``; a report folder from before the marker is known by its metrics.json
  (format ``detect-eval``), and only eval's own file names in it are ever deleted;
- ``OUT/.detect-written`` (:mod:`detect.io.ledger`) lists the files eval may have
  written (:data:`FILES`), recorded before they are written;
- ``OUT/.lock`` keeps two evals out of one folder.

A run that fails after taking the folder removes its files (and the folder, when it
made it); an interrupted one leaves them, marked ``running``, for the next run to clear.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from detect import __version__
from detect.errors import OutputFolderError
from detect.eval.result import EVAL_FORMAT
from detect.io.atomic import write_json
from detect.io.ledger import Ledger
from detect.io.outlock import hold_out_lock
from detect.io.replacing import (
    announce_replacement,
    bookkeeping,
    refuse_existing,
    remove_if_unused,
    written_on,
)

MARKER_NAME = ".detect-eval.json"
#: Every file ``detect eval`` writes, all at the top of its folder.
FILES = ("metrics.json", "report.md", "report.html", "predictions.json", "pr_curves.png",
         "froc.png", "confusion_detector.png", "confusion_head.png", "false_positives.png",
         "missed.png", "series.json")
_BOOKKEEPING = bookkeeping(MARKER_NAME)


def valid_path(rel: str) -> bool:
    """A path eval writes (relative to OUT), and nothing else."""
    return rel in FILES


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _state(out: Path) -> str | None:
    """``running``, ``finished`` (a marker, or a report from before the marker), None."""
    state = _json(out / MARKER_NAME).get("state")
    if state in ("running", "finished"):
        return str(state)
    return "finished" if _json(out / "metrics.json").get("format") == EVAL_FORMAT else None


def _report(out: Path) -> str:
    """The report a folder holds, in words: its date, split and dataset."""
    if not (out / "metrics.json").is_file() and (out / "series.json").is_file():
        return f"the whole-series report of {written_on(out / 'series.json')}"
    metrics = _json(out / "metrics.json")
    dataset = metrics.get("dataset") if isinstance(metrics.get("dataset"), dict) else {}
    fingerprint = str((dataset or {}).get("fingerprint") or "")[:12]
    about = (f" ({metrics.get('split')} split of the dataset with fingerprint {fingerprint})"
             if fingerprint else "")
    return f"the report of {written_on(out / 'metrics.json')}{about}"


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse a folder eval may not write, before any work (the module docstring's rule).

    Raises:
        OutputFolderError: a file, a report without ``overwrite``, or a non-empty folder
            of someone else's files.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputFolderError(f"--out {out} is a file; pass a folder")
    state = _state(out)
    if state == "finished" and not overwrite:
        raise refuse_existing(out, _report(out))
    if state is None:
        try:
            foreign = sorted(n for n in os.listdir(out) if n not in _BOOKKEEPING)
        except OSError as exc:
            raise OutputFolderError(f"cannot list --out {out} ({exc.strerror})") from None
        if foreign:
            raise OutputFolderError(
                f"--out {out} is not empty ({len(foreign)} entries, e.g. {foreign[0]!r}) and "
                f"was not written by detect eval; pass a new or empty folder")


@contextmanager
def eval_output(out: Path, overwrite: bool) -> Iterator[Ledger]:
    """Own ``out`` for one report: take its lock, clear an earlier report (``overwrite``,
    saying which) or an interrupted run's files, mark it running, yield the ledger, mark
    it finished. An exception removes the files this run recorded (and ``out`` when this
    run made it).

    Raises:
        OutputFolderError: as :func:`check_out`; another eval holds the folder.
    """
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFolderError(f"cannot create the output folder {out} ({exc.strerror}); "
                                f"pass --out to a folder you can write") from None
    try:
        with hold_out_lock(out, shard=False, settings="eval", command="detect eval"):
            yield from _owned(out, overwrite)
    except BaseException:
        if created:
            remove_if_unused(out, MARKER_NAME)
        raise


def _owned(out: Path, overwrite: bool) -> Iterator[Ledger]:
    """:func:`eval_output` under the folder's lock."""
    check_out(out, overwrite)  # again, under the lock
    ledger = Ledger(out, valid_path)
    state = _state(out)
    if state is not None:
        ledger.record(n for n in FILES if (out / n).exists())  # a report from before the
        what = _report(out)                                  # ledger too
        removed = ledger.clear()
        if state == "finished":
            announce_replacement(out, what, f"its {removed} files deleted")
    about = {"written_by": "detect eval", "version": __version__}
    write_json(out / MARKER_NAME, {**about, "state": "running", "pid": os.getpid()})
    ledger.record(FILES)
    try:
        yield ledger
    except BaseException:
        ledger.clear()
        (out / MARKER_NAME).unlink(missing_ok=True)
        raise
    write_json(out / MARKER_NAME, {**about, "state": "finished"})

