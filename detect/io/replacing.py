"""The one rule for an output folder that already holds a result, in every command that
writes one (convert, eval, predict, export; train never replaces a run, it numbers a new
one):

- a new or empty folder is taken;
- a folder holding the command's finished result is refused, naming what it holds and
  ``--overwrite``; with ``--overwrite`` the result is replaced, and one warning line says
  what (its date and what identifies it, and what no longer matches it): the command
  deletes only the files its ledger (:mod:`detect.io.ledger`) says it wrote there;
- a folder of someone else's files is refused, with or without ``--overwrite``;
- an interrupted run is not a result: re-running the command continues it (convert, with
  the same options) or clears its files and starts again (eval, predict, export).

The wording lives here so every command says it the same way.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from detect.errors import OutputFolderError
from detect.io.ledger import LEDGER_NAME
from detect.io.outlock import GUARD_NAME, LOCK_NAME

log = logging.getLogger(__name__)

#: ``--overwrite``'s help, the same in every command.
OVERWRITE_HELP = ("Replace the result already in the output folder (only files detect wrote "
                  "there are deleted; a folder of other files is never used).")


def bookkeeping(marker: str) -> frozenset[str]:
    """The files a command keeps at the top of its OUT besides its results: its marker
    (``marker``), the ledger and the lock."""
    return frozenset({marker, LEDGER_NAME, LOCK_NAME, GUARD_NAME})


def remove_if_unused(out: Path, marker: str) -> None:
    """Remove a folder a run created when it holds nothing but that command's bookkeeping
    (a run that failed before writing a result); anything else keeps the folder."""
    try:
        names = set(os.listdir(out))
        if names <= bookkeeping(marker):
            for name in names:
                (out / name).unlink()
            out.rmdir()
    except OSError:
        pass


def written_on(path: Path) -> str:
    """When ``path`` was last written, ``YYYY-MM-DD HH:MM`` local time (the date a user
    knows a result by), or ``an unknown date``."""
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    except OSError:
        return "an unknown date"


def refuse_existing(out: Path, what: str, *, option: str = "--out",
                    consequence: str = "") -> OutputFolderError:
    """The error for an existing result without ``--overwrite``: ``<out> holds <what>;
    pass --overwrite to replace it[ (<consequence>)], or another <option>``."""
    why = f" ({consequence})" if consequence else ""
    return OutputFolderError(f"{out} holds {what}; pass --overwrite to replace it{why}, or "
                             f"another {option}")


def announce_replacement(out: Path, what: str, consequence: str = "") -> str:
    """Log (as a warning, so it shows by default) and return the one line that says what
    a run with ``--overwrite`` replaces: ``replacing <what> in <out>[: <consequence>]``."""
    line = f"replacing {what} in {out}" + (f": {consequence}" if consequence else "")
    log.warning("%s", line)
    return line
