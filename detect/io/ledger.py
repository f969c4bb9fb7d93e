"""The ledger of an output folder: every file a detect command may have written there.

OUT belongs to the user, so a command deletes only what it wrote itself. Before a file is
written its path (relative to OUT) is appended to ``OUT/.detect-written`` (one line per
path, one append per batch so that processes sharing the folder never interleave a line):
an interrupted run is covered too. Only ledger paths that the command's own ``valid``
rule accepts are ever deleted (a hand-edited ledger naming ``../x`` or ``notes.txt`` is
ignored), never through a link out of OUT, and with each path the hidden temporary
siblings :mod:`detect.io.atomic` leaves when a process dies mid-write
(``.<name>.<pid>.tmp``). Convert (images and labels) and predict (its whole output) keep
one each.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from detect.errors import OutputFolderError, UnsafePathError
from detect.io.atomic import write_text
from detect.io.paths import inside

log = logging.getLogger(__name__)

LEDGER_NAME = ".detect-written"


class Ledger:
    """The paths a command may have written under ``out`` (module docstring); ``valid``
    says which relative POSIX paths the command ever writes."""

    def __init__(self, out: Path, valid: Callable[[str], bool]) -> None:
        self.out = out
        self.path = out / LEDGER_NAME
        self.valid = valid

    def record(self, paths: Iterable[str]) -> None:
        """Add paths before they are written (one append).

        Raises:
            OutputFolderError: the ledger cannot be written (a link, no space, read-only).
        """
        lines = "".join(f"{p}\n" for p in paths if self.valid(p))
        if not lines:
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
                         0o644)
        except OSError as exc:
            raise OutputFolderError(
                f"cannot write {self.path} ({exc.strerror}); it must be a plain file in a "
                f"folder you can write"
            ) from None
        try:
            os.write(fd, lines.encode("ascii"))
        except OSError as exc:
            raise OutputFolderError(f"cannot write {self.path} ({exc.strerror}); free space "
                                    f"or write another OUT") from None
        finally:
            os.close(fd)

    def paths(self) -> set[str]:
        try:
            text = self.path.read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:
            return set()
        return {line for line in text.splitlines() if self.valid(line)}

    def remove(self, paths: Iterable[str], *, prune: bool = False) -> int:
        """Delete the given ledger paths (and their temporary siblings); how many files
        were deleted. With ``prune``, folders left empty are removed too, up to OUT."""
        removed = 0
        folders: set[Path] = set()
        for rel in sorted(set(paths)):
            if not self.valid(rel):
                continue
            try:
                target = inside(self.out, *PurePosixPath(rel).parts)
            except UnsafePathError as exc:  # a folder of it is a link elsewhere: not ours
                log.warning("not deleting %s: %s", rel, exc)
                continue
            removed += _unlink(target) + _remove_temporaries(target)
            if prune:
                folders.update(p for p in target.parents if self.out in p.parents)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            try:
                folder.rmdir()  # only when empty: a file of the user's keeps it
            except OSError:
                continue
        return removed

    def remove_stale(self, keep: set[str]) -> int:
        """Delete the recorded files that are not in ``keep``; the ledger keeps ``keep``."""
        removed = self.remove(self.paths() - keep)
        write_text(self.path, "".join(f"{p}\n" for p in sorted(keep)))
        return removed

    def clear(self) -> int:
        """Delete every recorded file (and folders left empty) and empty the ledger."""
        removed = self.remove(self.paths(), prune=True)
        write_text(self.path, "")
        return removed


def _unlink(path: Path) -> int:
    try:
        if path.is_symlink() or path.is_file():
            path.unlink()
            return 1
    except FileNotFoundError:
        pass
    return 0


def _remove_temporaries(path: Path) -> int:
    pattern = re.compile(rf"\.{re.escape(path.name)}\.\d+\.tmp")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return 0
    return sum(_unlink(path.parent / name) for name in names if pattern.fullmatch(name))
