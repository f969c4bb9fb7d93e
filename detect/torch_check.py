"""Check that torch and torchvision are a working compiled pair, before any model runs.

torch and torchvision ship compiled operators that only load against the exact torch
build they were made for. A mismatched pair imports, then fails on first use with
messages such as ``libc10_cuda.so: cannot open shared object file`` or ``operator
torchvision::nms does not exist`` (seen with the CPU wheel of torch 2.13 beside the
registry's torchvision). :func:`require_working_torch` turns that into one line that says
which pair is installed and the command that installs the pinned pair.

Run ``python -m detect.torch_check`` to check an environment (the Makefile does).
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Callable

from detect.errors import EnvironmentProblem

#: The pinned pair of pyproject.toml (they are released together; never mix them).
PINNED_TORCH = "2.14.1"
PINNED_TORCHVISION = "0.29.1"
FIX_COMMAND = f"pip install torch=={PINNED_TORCH} torchvision=={PINNED_TORCHVISION}"


def _installed(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _probe() -> None:
    """Import torchvision's ops and look up its compiled NMS kernel (raises if broken)."""
    import torch
    import torchvision.ops  # noqa: F401  (registers the torchvision:: operators)

    getattr(torch.ops.torchvision, "nms")  # noqa: B009  (raises when the op is not registered)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def require_working_torch(probe: Callable[[], None] | None = None) -> None:
    """Raise EnvironmentProblem unless torchvision's compiled operators load.

    ``probe`` replaces the default check (tests simulate a broken install with it).

    Raises:
        EnvironmentProblem: one line naming the installed pair and the fix command.
    """
    try:
        (probe or _probe)()
    except (ImportError, OSError, RuntimeError, AttributeError) as exc:
        raise EnvironmentProblem(
            f"torch {_installed('torch')} and torchvision {_installed('torchvision')} do not "
            f"work together ({type(exc).__name__}: {_first_line(exc)}); expected the pinned "
            f"pair torch {PINNED_TORCH} + torchvision {PINNED_TORCHVISION}; fix: {FIX_COMMAND}"
        ) from None


def main(argv: list[str] | None = None) -> int:
    """``python -m detect.torch_check``: exit 0 with a short line, or 1 with the problem."""
    del argv
    try:
        require_working_torch()
    except EnvironmentProblem as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(
        f"torch {_installed('torch')} + torchvision {_installed('torchvision')}: ops load\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
