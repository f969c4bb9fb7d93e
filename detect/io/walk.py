"""The one folder walker of detect: every regular file under a root, each once.

Data often lives on another disk and is pointed at through symbolic links, so links are
followed, files and folders alike. Each real folder is entered once (identified by
``(st_dev, st_ino)``, not by name) and each real file is listed once; whatever cannot be
walked is kept as a :class:`WalkSkip` with one of :data:`SKIP_KINDS`, never dropped
silently and never raised:

- ``symlink-loop``: a link back to a folder above it (the walk is cut there), or a link
  chain that never ends (``a -> b -> a``);
- ``dangling-link``: a link whose target does not exist;
- ``duplicate-path``: a second path (through a link) to a folder or file already walked;
- ``unreadable-path``: a folder that cannot be listed, an entry that cannot be examined,
  or something that is neither a folder nor a regular file (a FIFO would block a reader).

Paths are yielded as walked (``root/<link>/...``), so they stay relative to ``root``.
The order is deterministic: entries by name, depth first.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SKIP_KINDS: tuple[str, ...] = (
    "symlink-loop",
    "dangling-link",
    "duplicate-path",
    "unreadable-path",
)


@dataclass(frozen=True)
class WalkSkip:
    """An entry that was not walked, and why (``kind`` is one of :data:`SKIP_KINDS`)."""

    path: Path
    kind: str
    detail: str

    def __post_init__(self) -> None:
        if self.kind not in SKIP_KINDS:
            raise ValueError(f"walk skip kind must be one of {SKIP_KINDS}, got {self.kind!r}")


@dataclass
class WalkResult:
    """Every regular file found (in walk order) and every entry skipped."""

    files: list[Path] = field(default_factory=list)
    skipped: list[WalkSkip] = field(default_factory=list)


_Identity = tuple[int, int]
#: The folders above an entry, innermost first: (identity, the chain above it).
_Chain = tuple[_Identity, "_Chain"] | None


def _identity(info: os.stat_result) -> _Identity:
    return (info.st_dev, info.st_ino)


def _holds(chain: _Chain, identity: _Identity) -> bool:
    while chain is not None:
        if chain[0] == identity:
            return True
        chain = chain[1]
    return False


class _Walker:
    def __init__(self, exclude: Iterable[Path]) -> None:
        self.result = WalkResult()
        self.folders: dict[_Identity, Path] = {}
        self.files: dict[_Identity, Path] = {}
        self.excluded: set[_Identity] = set()
        for path in exclude:
            try:
                self.excluded.add(_identity(path.stat()))
            except OSError:
                continue

    def skip(self, path: Path, kind: str, detail: str) -> None:
        self.result.skipped.append(WalkSkip(path, kind, detail))

    def examine(self, path: Path) -> os.stat_result | None:
        """``stat`` through links, or None with the reason recorded."""
        try:
            return path.stat()
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self.skip(path, "symlink-loop", "a chain of links that never ends")
            elif exc.errno == errno.ENOENT and path.is_symlink():
                self.skip(path, "dangling-link",
                          f"link to {os.readlink(path)!r}, which does not exist")
            else:
                self.skip(path, "unreadable-path", f"cannot examine: {exc.strerror or exc}")
            return None

    def run(self, root: Path) -> WalkResult:
        """Depth first with an explicit stack (no recursion limit on deep trees)."""
        stack: list[tuple[Path, _Chain]] = [(root, None)]
        while stack:
            path, above = stack.pop()
            info = self.examine(path)
            if info is None:
                continue
            if stat.S_ISDIR(info.st_mode):
                names = self.enter(path, info, above)
                inner: _Chain = (_identity(info), above)
                stack.extend((path / name, inner) for name in reversed(names))
            elif stat.S_ISREG(info.st_mode):
                self.add_file(path, info)
            else:
                self.skip(path, "unreadable-path",
                          "neither a folder nor a regular file (a FIFO, socket or device)")
        return self.result

    def enter(self, folder: Path, info: os.stat_result, above: _Chain) -> list[str]:
        """The sorted entry names of a folder walked for the first time, else none."""
        identity = _identity(info)
        if identity in self.excluded:
            return []
        if _holds(above, identity):
            self.skip(folder, "symlink-loop",
                      "a link back to a folder above it; not walked again")
            return []
        if identity in self.folders:
            self.skip(folder, "duplicate-path",
                      f"the same folder as {self.folders[identity]}, already walked")
            return []
        self.folders[identity] = folder
        try:
            with os.scandir(folder) as listing:
                return sorted(entry.name for entry in listing)
        except OSError as exc:
            self.skip(folder, "unreadable-path", f"cannot list: {exc.strerror or exc}")
            return []

    def add_file(self, path: Path, info: os.stat_result) -> None:
        identity = _identity(info)
        if identity in self.files:
            self.skip(path, "duplicate-path",
                      f"the same file as {self.files[identity]}, already listed")
            return
        self.files[identity] = path
        self.result.files.append(path)


def walk_tree(root: Path, *, exclude: Iterable[Path] = ()) -> WalkResult:
    """Every regular file under ``root`` (``root`` itself if it is a file), links followed.

    ``exclude``: folders never entered (e.g. the output folder, should a link lead there).
    A ``root`` that cannot be examined gives an empty result with its skip entry.
    """
    return walk_trees([root], exclude=exclude)


def walk_trees(roots: Iterable[Path], *, exclude: Iterable[Path] = ()) -> WalkResult:
    """:func:`walk_tree` over several roots in turn, each real file listed once overall
    (a root inside another, or named twice, gives ``duplicate-path`` skips)."""
    walker = _Walker(exclude)
    for root in roots:
        walker.run(root)
    return walker.result
