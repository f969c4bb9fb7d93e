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
import time
from pathlib import Path

from detect.errors import OutputFolderError

log = logging.getLogger(__name__)

#: ``--overwrite``'s help, the same in every command.
OVERWRITE_HELP = ("Replace the result already in the output folder (only files detect wrote "
                  "there are deleted; a folder of other files is never used).")


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
