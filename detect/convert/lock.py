"""One writer per output folder: an advisory lock on ``OUT/.lock``.

Two converts writing one OUT at once with different options would leave a dataset.json
that names one recipe beside PNGs rendered with the other. So a convert holds
``flock(OUT/.lock)`` for its whole run and a second one fails at once (non-blocking) with
one line naming the holder's pid. ``flock`` is released by the kernel when its process
dies, however it dies, so a stale lock never blocks anyone (a pid file would).

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
from contextlib import contextmanager
from pathlib import Path

from detect.errors import OutputFolderError

LOCK_NAME = ".lock"
GUARD_NAME = ".lock-guard"


class OutBusy(OutputFolderError):
    """Another detect convert is writing the output folder."""


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


def _write_holder(fd: int, *, shard: bool, settings: str) -> None:
    data = json.dumps({"pid": os.getpid(), "shard": shard, "settings": settings}).encode()
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


def _acquire(out: Path, fd: int, *, shard: bool, settings: str) -> None:
    if _try(fd, fcntl.LOCK_EX):
        _write_holder(fd, shard=shard, settings=settings)
        if shard:
            fcntl.flock(fd, fcntl.LOCK_SH)  # let shards with the same options join
        return
    busy = f"{out} is being written by another detect convert"
    if not shard or not _try(fd, fcntl.LOCK_SH):
        pid = _holder(fd).get("pid", "unknown")
        raise OutBusy(f"{busy} (pid {pid}); wait for it to finish, or write another OUT")
    holder = _holder(fd)
    if not holder.get("shard") or holder.get("settings") != settings:
        raise OutBusy(
            f"{busy} (pid {holder.get('pid', 'unknown')}): shards with different options; "
            f"run every shard with the same options, or write another OUT"
        )


@contextmanager
def hold_out_lock(out: Path, *, shard: bool, settings: str) -> Iterator[None]:
    """Hold OUT's lock for the ``with`` block: alone (``shard`` False) or shared with
    shards whose ``settings`` key is the same.

    Raises:
        OutBusy: another convert holds it (the message names its pid).
    """
    out.mkdir(parents=True, exist_ok=True)
    fd = _open(out / LOCK_NAME)
    try:
        with _guard(out):
            _acquire(out, fd, shard=shard, settings=settings)
        yield
    finally:
        os.close(fd)  # releases the flock
