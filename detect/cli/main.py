"""The ``detect`` command line: a thin Typer layer over the library.

Each command parses its options into a config, calls one library function, and prints
what it did (the commands live in :mod:`detect.cli.data`, :mod:`detect.cli.evaluate`,
:mod:`detect.cli.model` and :mod:`detect.cli.demo`; what they share in
:mod:`detect.cli.app`). Heavy imports (torch,
ultralytics) happen inside the commands that need them, so ``detect --help`` and
``detect convert`` start fast.
"""

from __future__ import annotations

import sys

from detect.cli import data, demo, evaluate, model  # noqa: F401  (each registers its commands)
from detect.cli import download as _download  # noqa: F401  (detect download)
from detect.cli.app import app

__all__ = ["app", "main"]


VERBOSE_FLAGS = ("-v", "--verbose")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. ``-v`` / ``--verbose`` work anywhere on the line, after
    the command too (``detect train ... -v``), as the root option they are."""
    args = list(argv if argv is not None else sys.argv[1:])
    end = args.index("--") if "--" in args else len(args)
    verbose = any(a in VERBOSE_FLAGS for a in args[:end])
    args = [a for k, a in enumerate(args) if k >= end or a not in VERBOSE_FLAGS]
    app(args=(["--verbose"] if verbose else []) + args, prog_name="detect")
