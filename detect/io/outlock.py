"""One writer per output folder: an advisory lock on ``OUT/.lock``.

Two converts writing one OUT at once with different options would leave a dataset.json
that names one recipe beside PNGs rendered with the other; two predicts would mix their
files. So a command (convert, predict) holds ``flock(OUT/.lock)`` for its whole run and a
second one fails at once (non-blocking) with one line naming the holder's pid. ``flock``
is released by the kernel when the last descriptor of the open file closes, however its
process dies, so a stale lock never blocks anyone (a pid file would) -- provided no other
process holds a copy of the descriptor. A forked worker inherits every descriptor (close
on exec does not apply to fork), so a worker that outlived a ``kill -9`` of its parent
would hold the lock for ever: every lock descriptor is closed in a child right after a
fork (``os.register_at_fork``), and worker processes also die with their parent
(:mod:`detect.workers`). If the lock is still held after the pid in it is gone, the
message says so.

Shards (``--shard I/N``) are meant to run side by side on a batch scheduler: they share
the lock (``LOCK_SH``) when their options agree (the same ``settings`` key, written in
the lock file by the first of them) and are refused otherwise; a run without ``--shard``
needs the lock to itself (``LOCK_EX``). Taking the lock is serialised by a second lock
file, ``OUT/.lock-guard``, held for milliseconds, so the first shard's switch from
exclusive to shared cannot be raced.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from detect.errors import OutputFolderError
from detect.io.write_errors import write_problem

LOCK_NAME = ".lock"
GUARD_NAME = ".lock-guard"
#: Lock descriptors this process holds, closed in every forked child.
_HELD: set[int] = set()
_HOOKED: list[bool] = []


class OutBusy(OutputFolderError):
    """Another detect command is writing the output folder."""


def _close_held_in_child() -> None:
    for fd in list(_HELD):
        with suppress(OSError):
            os.close(fd)
    _HELD.clear()


def _hold(fd: int) -> None:
    if not _HOOKED:
        os.register_at_fork(after_in_child=_close_held_in_child)
        _HOOKED.append(True)
    _HELD.add(fd)


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return True  # unknown: do not claim it is gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _open(path: Path) -> int:
    """Open (create) a lock file, never through a link: a planted ``.lock`` link must not
    make convert truncate a file elsewhere.

    Raises:
        OutputFolderError: the lock file cannot be opened (a link, no permission).
    """
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise OutputFolderError(
            f"cannot open the lock file {path} ({exc.strerror}); it must be a plain file "
            f"in a folder you can write"
        ) from None


def _try(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(fd: int) -> dict[str, object]:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_holder(fd: int, *, shard: bool, settings: str, command: str) -> None:
    data = json.dumps({"pid": os.getpid(), "shard": shard, "settings": settings,
                       "command": command}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


@contextmanager
def _guard(out: Path) -> Iterator[None]:
    fd = _open(out / GUARD_NAME)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocking: held only while a lock is taken
        yield
    finally:
        os.close(fd)


def _acquire(out: Path, fd: int, *, shard: bool, settings: str, command: str) -> None:
    if _try(fd, fcntl.LOCK_EX):
        _write_holder(fd, shard=shard, settings=settings, command=command)
        if shard:
            fcntl.flock(fd, fcntl.LOCK_SH)  # let shards with the same options join
        return
    holder = _holder(fd)
    busy = f"{out} is being written by another {holder.get('command', 'detect command')}"
    if not shard or not _try(fd, fcntl.LOCK_SH):
        pid = holder.get("pid", "unknown")
        if not _alive(pid):
            raise OutBusy(
                f"{busy}: its process (pid {pid}) is gone, but a process it started still "
                f"holds {out / LOCK_NAME}; end that process (fuser {out / LOCK_NAME} names "
                f"it), or write another OUT"
            )
        raise OutBusy(f"{busy} (pid {pid}); wait for it to finish, or write another OUT")
    holder = _holder(fd)
    if not holder.get("shard") or holder.get("settings") != settings:
        raise OutBusy(
            f"{busy} (pid {holder.get('pid', 'unknown')}): shards with different options; "
            f"run every shard with the same options, or write another OUT"
        )


@contextmanager
def hold_out_lock(out: Path, *, shard: bool, settings: str,
                  command: str = "detect convert") -> Iterator[None]:
    """Hold OUT's lock for the ``with`` block: alone (``shard`` False) or shared with
    shards whose ``settings`` key is the same. ``command`` names the holder in the
    message a second command gets.

    Raises:
        OutBusy: another command holds it (the message names its pid).
        OutputFolderError: OUT cannot be created or the lock file opened.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFolderError(write_problem(exc, out) or f"cannot create OUT {out} "
                                f"({exc.strerror}); pass a folder you can write") from None
    fd = _open(out / LOCK_NAME)
    _hold(fd)
    try:
        with _guard(out):
            _acquire(out, fd, shard=shard, settings=settings, command=command)
        yield
    finally:
        _HELD.discard(fd)
        os.close(fd)  # releases the flock
