"""Check that torch and torchvision are a working compiled pair, before any model runs.

torch and torchvision ship compiled operators that only load against the exact torch
build they were made for. A mismatched pair imports, then fails on first use with
messages such as ``libc10_cuda.so: cannot open shared object file`` or ``operator
torchvision::nms does not exist`` (seen with the CPU wheel of torch 2.13 beside the
registry's torchvision). :func:`require_working_torch` turns that into one line that says
which pair is installed and the command that installs the pinned pair.

Without torch at all (the base install, ``pip install detect``, which runs exported models
with ONNX Runtime alone) the same call says what needs the training packages and how to
install them (:class:`~detect.errors.TrainingStackMissing`).

Run ``python -m detect.torch_check`` to check an environment (the Makefile does).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable, Sequence

from detect.errors import EnvironmentProblem, TrainingStackMissing

#: The pinned pair of pyproject.toml (they are released together; never mix them).
PINNED_TORCH = "2.14.1"
PINNED_TORCHVISION = "0.29.1"
FIX_COMMAND = f"pip install torch=={PINNED_TORCH} torchvision=={PINNED_TORCHVISION}"
#: What ``pip install 'detect[train]'`` adds to the base install.
TRAINING_PACKAGES = ("torch", "torchvision", "ultralytics")
TRAIN_INSTALL = "pip install 'detect[train]'"


def require_training_packages(what: str, packages: Sequence[str] = TRAINING_PACKAGES) -> None:
    """Raise TrainingStackMissing unless ``packages`` are installed (found, not imported).

    Raises:
        TrainingStackMissing: ``<what> needs the training packages: pip install
            'detect[train]'``, naming the missing packages.
    """
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise TrainingStackMissing(
            f"{what} needs the training packages: {TRAIN_INSTALL} (not installed: "
            f"{', '.join(missing)})"
        )


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


def require_working_torch(what: str = "this command",
                          probe: Callable[[], None] | None = None) -> None:
    """Raise unless torch and torchvision are installed and their compiled operators load.

    ``what`` names what needs them (in the message when they are not installed); ``probe``
    replaces the default check (tests simulate a broken install with it).

    Raises:
        TrainingStackMissing: torch or torchvision is not installed.
        EnvironmentProblem: one line naming the installed pair and the fix command.
    """
    require_training_packages(what, ("torch", "torchvision"))
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
