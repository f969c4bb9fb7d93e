"""File and folder names made from values read inside files (PatientID, UIDs, ...).

A value from a DICOM header or an XML file is data, never a path: it may hold ``/``,
``..``, a backslash, control characters, any unicode, or be hundreds of characters long.
:func:`safe_component` turns it into one path component from a strict allowlist, and
:func:`inside` joins such components under a folder and checks the result stays there.

The names stay readable and distinct: a value that is already safe is kept as it is (real
patient IDs and UIDs are), anything else has its unsafe characters replaced and a short
hash of the original value appended, so two different values never share a name.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from detect.errors import UnsafePathError

#: The characters a name may hold.
SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")
#: Length of a component (a DICOM UID has at most 64 characters, a patient ID 64).
MAX_COMPONENT_CHARS = 64
_HASH_CHARS = 10


def _is_safe(name: str, max_chars: int) -> bool:
    return (
        SAFE_NAME.fullmatch(name) is not None
        and not name.startswith(".")
        and len(name) <= max_chars
    )


def safe_component(value: str, *, max_chars: int = MAX_COMPONENT_CHARS) -> str:
    """``value`` as one path component: ``[A-Za-z0-9._-]``, not starting with ``.``
    (so never ``.`` or ``..``), at most ``max_chars`` long.

    A safe value is returned unchanged; any other (unsafe characters, a leading dot, too
    long, empty) becomes its safe characters, ``_`` for each unsafe run, cut to fit, then
    ``-`` and a hash of the whole value: distinct values give distinct names.
    """
    if max_chars < _HASH_CHARS + 2:
        raise ValueError(f"max_chars must be >= {_HASH_CHARS + 2}, got {max_chars}")
    if _is_safe(value, max_chars):
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    readable = _UNSAFE_RUN.sub("_", value).lstrip(".")[: max_chars - _HASH_CHARS - 1]
    return f"{readable}-{digest}" if readable else f"x-{digest}"


def inside(folder: Path, *components: str) -> Path:
    """``folder/<components...>``, each a safe component (see :func:`safe_component`),
    checked to stay inside ``folder`` also after links are resolved (a folder inside
    that is a link to elsewhere does not take a write there).

    Raises:
        UnsafePathError: a component is not a safe name, or the path would leave
            ``folder``.
    """
    for component in components:
        if SAFE_NAME.fullmatch(component) is None or component in (".", ".."):
            raise UnsafePathError(
                f"{component!r} is not a safe file name (expected [A-Za-z0-9._-], not "
                f"'.' or '..'); refusing to write it under {folder}"
            )
    path = folder.joinpath(*components)
    base = os.path.realpath(folder)
    if os.path.commonpath([base, os.path.realpath(path)]) != base:
        raise UnsafePathError(
            f"{path} leads outside {folder} (through a link); refusing to write there"
        )
    return path
