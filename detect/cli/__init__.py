"""The ``detect`` command line (see :mod:`detect.cli.main`)."""

from detect.cli.main import app, main

__all__ = ["app", "main"]
