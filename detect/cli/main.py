"""The ``detect`` command line: a thin Typer layer over the library.

Each command parses its options into a config, calls one library function, and prints
what it did (the commands live in :mod:`detect.cli.data`, :mod:`detect.cli.model` and
:mod:`detect.cli.demo`; what they share in :mod:`detect.cli.app`). Heavy imports (torch,
ultralytics) happen inside the commands that need them, so ``detect --help`` and
``detect convert`` start fast.
"""

from __future__ import annotations

import sys

from detect.cli import data, demo, model  # noqa: F401  (each registers its commands)
from detect.cli import download as _download  # noqa: F401  (detect download)
from detect.cli.app import app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    app(args=argv if argv is not None else sys.argv[1:], prog_name="detect")
