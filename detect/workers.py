"""Worker process pools whose workers die with the process that started them.

A ``ProcessPoolExecutor`` worker that loses its parent to ``kill -9`` does not notice: it
waits on its task queue for ever (forked workers even keep the queue's write end open),
holding whatever it inherited, ``OUT/.lock`` included, so every re-run was refused naming
a dead pid. Every pool detect starts comes from :func:`worker_pool`, whose initializer
asks Linux to send the worker SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``)
and exits at once if the parent is already gone (the race between fork and the prctl
call). Elsewhere the initializer does nothing: the lock is then still released because
lock descriptors are closed in forked children (:mod:`detect.io.outlock`).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Worker initializer: SIGKILL when the parent process dies (Linux), and exit now if
    ``parent`` is already gone."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the lock is still not inherited
            pass
    if os.getppid() != parent:
        os._exit(1)


def worker_pool(workers: int, *, start_method: str | None = None) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes (``start_method``: ``fork``, ``spawn``... or the
    platform's default) that die with this process."""
    context: Any = multiprocessing.get_context(start_method)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=die_with_parent, initargs=(os.getpid(),))
