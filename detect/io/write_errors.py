"""A full disk, a read-only OUT or a folder without write permission is one line, the
same :class:`~detect.errors.OutputFolderError` in every command that writes a folder.

:func:`output_errors` wraps a command's writing: an ``OSError`` that is about writing
(no space, quota, read-only file system, file too large; or any error on a path inside
OUT, permission denied included) becomes one line naming the file and what to do. Any
other ``OSError`` (reading an input, say) goes on as it was: it is not OUT's fault.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from detect.errors import OutputFolderError

_ALWAYS = {
    errno.ENOSPC: "the disk is full: free space, or write OUT on another disk",
    errno.EDQUOT: "the disk quota is used up: free space, or write OUT elsewhere",
    errno.EROFS: "the file system is read-only: write OUT on a writable one",
    errno.EFBIG: "the file is larger than the file system allows: write OUT elsewhere",
}
_INSIDE = {
    errno.EACCES: "permission denied: write OUT in a folder you can write",
    errno.EPERM: "not permitted: write OUT in a folder you can write",
}


def _inside(path: object, out: Path) -> bool:
    if not isinstance(path, (str, bytes, os.PathLike)):
        return False
    try:
        base = os.path.realpath(out)
        target = os.path.realpath(os.fsdecode(path))
        return os.path.commonpath([base, target]) == base
    except ValueError:
        return False


def write_problem(exc: OSError, out: Path) -> str | None:
    """What to tell the user when ``exc`` is a failure to write under ``out``, or None."""
    hint = _ALWAYS.get(exc.errno or 0)
    if hint is None and _inside(exc.filename, out):
        hint = _INSIDE.get(exc.errno or 0, "write OUT elsewhere")
    if hint is None:
        return None
    where = os.fsdecode(exc.filename) if exc.filename is not None else str(out)
    return f"cannot write {where} ({exc.strerror or exc}); {hint}"


@contextmanager
def output_errors(out: Path) -> Iterator[None]:
    """Turn a failure to write under ``out`` into :class:`OutputFolderError` (module
    docstring).

    Raises:
        OutputFolderError: the block failed to write under ``out``.
    """
    try:
        yield
    except OSError as exc:
        problem = write_problem(exc, out)
        if problem is None:
            raise
        raise OutputFolderError(problem) from None
