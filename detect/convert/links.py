"""One image in several datasets without copying it: a hard link where the file system
allows, else a copy. Used for a val split made of training images and for the fold
datasets of ``--folds``, which share one conversion's PNGs."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

#: errno values of a file system that cannot hard-link here (then the file is copied).
_NO_LINK = (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP)


def link_or_copy(source: Path, target: Path) -> bool:
    """Make ``target`` the same bytes as ``source``: a hard link, else a copy, placed by
    an atomic rename (a reader never sees half a file; a target that is another file is
    replaced). Returns False when ``target`` already was ``source``.

    Raises:
        OSError: ``source`` is missing or ``target``'s folder cannot be written.
    """
    if target.exists() and os.path.samefile(source, target):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)
    return True
