"""Fetch the instances of a series with WADO-RS, several at once, each straight to a file.

One request per instance (``studies/S/series/X/instances/I``), ``workers`` of them in
flight: memory holds at most ``workers`` instances, whatever the series' size, and every
answer is checked on its own (:mod:`detect.dicomweb.session`). Each file is written under
a temporary name and renamed (:mod:`detect.io.atomic`), so a file that exists is whole;
the dataset is written as the server sent it (same transfer syntax, same elements).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path

import pydicom

from detect.dicomweb.server import DicomwebServer, SeriesRef
from detect.errors import DicomwebError
from detect.io.atomic import atomic_path


class Stopped(Exception):
    """The fetch was told to stop (another fault, Ctrl-C, the run ending)."""


def fetch_instances(
    server: DicomwebServer,
    ref: SeriesRef,
    uids: Sequence[str],
    target: Callable[[str], Path],
    *,
    stop: threading.Event | None = None,
    on_file: Callable[[str, Path], None] | None = None,
) -> list[Path]:
    """Write every instance ``uids`` of ``ref`` to ``target(uid)``; the paths in ``uids``
    order. ``on_file(uid, path)`` is called (from a worker thread) after each file.

    Raises:
        DicomwebError: a request fails, or the server answers another instance than the
            one asked for (nothing more is fetched; files already written stay).
        Stopped: ``stop`` was set.
    """
    outer = stop or threading.Event()
    failed = threading.Event()  # a fault here: the other instances are not fetched

    def one(uid: str) -> Path:
        if outer.is_set() or failed.is_set():
            raise Stopped()
        dataset = server.instance(ref, uid)
        got = str(dataset.get("SOPInstanceUID", ""))
        if got != uid:
            raise DicomwebError(f"{server.config.name}: GET {ref.path}/instances/{uid}: the "
                                f"answer is instance {got[:70]!r}, not the one asked for")
        path = target(uid)
        with atomic_path(path) as tmp:
            pydicom.dcmwrite(tmp, dataset, enforce_file_format=False)
        if on_file is not None:
            on_file(uid, path)
        return path

    workers = max(1, min(server.config.workers, len(uids)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="detect-wado") as pool:
        futures: list[Future[Path]] = [pool.submit(one, uid) for uid in uids]
        wait(futures, return_when=FIRST_EXCEPTION)
        errors: list[BaseException] = [
            e for e in (f.exception() for f in futures if f.done() and not f.cancelled())
            if e is not None]
        if errors:
            failed.set()
            for future in futures:
                future.cancel()
            raise next((e for e in errors if not isinstance(e, Stopped)), errors[0])
    return [future.result() for future in futures]
