"""Whose files are in predict's OUT, and that they describe one run.

A predict killed half-way used to leave its VOC and PNG files for the next run into the
same ``--out`` to mix with its own (37 VOC files for 9 slices with findings). So predict
keeps convert's kind of bookkeeping (the ledger is :mod:`detect.io.ledger`, the lock
:mod:`detect.io.outlock`):

- ``OUT/.detect-predict.json`` (the marker) says the folder is predict's and whether its
  run ``running`` or ``finished``; it is written before the first output file and marked
  finished after the last.
- ``OUT/.detect-written`` lists every file predict may have written (predictions.json,
  the CSVs, ``voc/<patient>/<name>.xml|.png``, ``png/<patient>/<name>.png``,
  ``sr/<patient>/<name>.dcm``), recorded before it is written.
- ``OUT/.lock`` is held for the run, so two predicts never write one folder at once.

So ``--out`` (the rule of every command, :mod:`detect.io.replacing`): a new or empty
folder is taken; a finished run's folder is refused (its outputs describe that run; pass
another ``--out``), unless ``--overwrite``: then the files its ledger lists are deleted
when the new run takes the folder, and a warning says what was replaced (the old run's
date and model); a folder whose run never finished
(a failed run removes its own files; one killed outright cannot) and whose lock is free
is cleared of the files the ledger lists
(folders left empty go too) and used; one whose lock is held is refused naming the pid;
a non-empty folder without the marker is someone else's and refused (predictions from
before the marker, with predictions.json or summary.csv, included). Nothing predict did
not write is ever deleted.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from detect import __version__
from detect.errors import OutputFolderError
from detect.io.atomic import write_json
from detect.io.ledger import Ledger
from detect.io.outlock import hold_out_lock
from detect.io.paths import SAFE_NAME
from detect.io.replacing import (
    announce_replacement,
    bookkeeping,
    refuse_existing,
    written_on,
)

log = logging.getLogger(__name__)

MARKER_NAME = ".detect-predict.json"
#: The files predict writes at the top of OUT.
TOP_FILES = ("predictions.json", "summary.csv", "slices.csv", "skipped.csv", "lesions.json",
             "lesions.csv")
#: Per-slice and per-series folders and the suffixes of their files (a VOC XML and the
#: image it names; an overlay; an SR).
FOLDERS = {"voc": (".xml", ".png"), "png": (".png",), "sr": (".dcm",)}
_BOOKKEEPING = bookkeeping(MARKER_NAME)


def _safe(name: str) -> bool:
    return SAFE_NAME.fullmatch(name) is not None and not name.startswith(".")


def valid_path(rel: str) -> bool:
    """A path predict writes (relative to OUT), and nothing else."""
    parts = PurePosixPath(rel).parts
    if len(parts) == 1:
        return parts[0] in TOP_FILES
    return (len(parts) == 3 and parts[0] in FOLDERS
            and parts[2].endswith(FOLDERS[parts[0]]) and _safe(parts[1]) and _safe(parts[2]))


def _marker(out: Path) -> dict[str, Any]:
    try:
        data = json.loads((out / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _state(out: Path) -> str | None:
    """``running``/``finished`` from the marker; None without one (or an unreadable one)."""
    state = _marker(out).get("state")
    return state if state in ("running", "finished") else None


def _finished_run(out: Path) -> str:
    """What a finished run's folder holds, in words (its date and model)."""
    model = _marker(out).get("model")
    about = f" (model {model})" if isinstance(model, str) and model else ""
    return f"the predictions of {written_on(out / MARKER_NAME)}{about}"


def _entries(out: Path) -> list[str]:
    try:
        return sorted(name for name in os.listdir(out) if name not in _BOOKKEEPING)
    except OSError as exc:
        raise OutputFolderError(f"cannot list --out {out} ({exc.strerror})") from None


def _check_writable(out: Path) -> None:
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise OutputFolderError(
            f"output folder {out} is not writable ({probe} does not let this user write); "
            f"pass --out to a folder you can write"
        )


def choose_out(out: Path | None, overwrite: bool = False) -> Path:
    """``--out`` as given, when predict may write it (module docstring), or a fresh
    ``predictions``, ``predictions-2``... in the working folder.

    Raises:
        OutputFolderError: a file, a finished run's folder (without ``overwrite``),
            someone else's non-empty folder, or a folder this user cannot write.
    """
    if out is None:
        out, number = Path("predictions"), 1
        while out.exists():
            number += 1
            out = Path(f"predictions-{number}")
    elif out.exists() and not out.is_dir():
        raise OutputFolderError(f"--out {out} is a file; pass a folder")
    elif out.is_dir():
        state = _state(out)
        if state == "finished" and not overwrite:
            raise refuse_existing(out, _finished_run(out))
        if state is None and any((out / n).exists() for n in ("predictions.json", "summary.csv")):
            raise OutputFolderError(
                f"{out} holds predictions from a detect predict that kept no list of its "
                f"files, so --overwrite cannot tell them from yours; pass another --out")
        foreign = _entries(out) if state is None else []
        if foreign:
            raise OutputFolderError(
                f"--out {out} is not empty ({len(foreign)} entries, e.g. {foreign[0]!r}) and "
                f"was not written by detect predict; pass a new or empty folder"
            )
    _check_writable(out)
    return out


def discard_failed_run(out: Path, ledger: Ledger) -> None:
    """Remove what a failed run recorded (and the folders left empty); a failure to do so
    is logged, never raised over the run's own error."""
    try:
        removed = ledger.clear()
    except (OSError, OutputFolderError) as exc:
        log.warning("could not remove the failed run's files from %s (%s); the next run "
                    "into it clears them", out, exc)
    else:
        log.info("removed the %d files of the failed run from %s", removed, out)


@contextmanager
def predict_output(out: Path, overwrite: bool = False, model: str = "") -> Iterator[Ledger]:
    """Own ``out`` for one run: take its lock, clear what an unfinished run left (and,
    with ``overwrite``, what a finished one wrote, saying so), mark it running (with
    ``model``, the run's weights), yield the ledger to record paths in, and mark it
    finished when the block ends without an exception. An exception (a server fault, a
    full disk, Ctrl-C) removes the files the run recorded (:func:`discard_failed_run`); a
    process killed outright leaves them, marked ``running``, for the next run to clear.

    Raises:
        OutputFolderError: another predict holds the folder, or it changed since
            :func:`choose_out` (someone else's files, or a finished run).
    """
    with hold_out_lock(out, shard=False, settings="predict", command="detect predict"):
        choose_out(out, overwrite)  # again, under the lock: another run may have finished
        ledger = Ledger(out, valid_path)
        state = _state(out)
        if state == "finished":
            what = _finished_run(out)
            removed = ledger.clear()
            announce_replacement(out, what, f"its {removed} files deleted")
        elif state == "running":
            removed = ledger.clear()
            log.warning("%s held an unfinished prediction run; removed its %d files", out,
                        removed)
        about = {"written_by": "detect predict", "version": __version__, "model": model}
        write_json(out / MARKER_NAME, {**about, "state": "running", "pid": os.getpid()})
        ledger.record(TOP_FILES)
        try:
            yield ledger
        except BaseException:
            discard_failed_run(out, ledger)
            raise
        write_json(out / MARKER_NAME, {**about, "state": "finished"})
