"""The Typer application every ``detect`` command registers on, and what they share:
library errors (``DetectError``) become one line on stderr and exit code 1 (usage errors
are Typer's, exit code 2; Ctrl-C exits 130), a progress bar, and table printing."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from detect import __version__
from detect.errors import DetectError

app = typer.Typer(
    name="detect",
    help="Lung tumour detection and histology on CT / PET-CT DICOM (TCIA Lung-PET-CT-Dx).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console()


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one line and exit 1; Ctrl-C into exit 130."""
    try:
        yield
    except DetectError as exc:
        # escaped: messages quote user and file values, which may hold "[" (rich markup)
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("interrupted: finished work is kept; run the same command to resume")
        raise typer.Exit(130) from None


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar driven by ``callback(done, total)``."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@contextmanager
def epoch_bars() -> Iterator[Callable[[int, int, int, int, float], None]]:
    """One rich progress bar per training epoch, driven by
    ``callback(epoch, epochs, step, steps, images_per_s)`` (a family's ``on_batch``)."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    ) as bar:
        tasks: dict[int, TaskID] = {}

        def update(epoch: int, epochs: int, step: int, steps: int, rate: float) -> None:
            if epoch not in tasks:
                tasks[epoch] = bar.add_task(f"epoch {epoch}/{epochs}", total=steps, rate="")
            bar.update(tasks[epoch], completed=step, total=steps, rate=f"{rate:.1f} img/s")

        yield update


def _version(value: bool) -> None:
    if value:
        out.print(f"detect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def print_table(rows: list[tuple[str, Any]]) -> None:
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        out.print(f"  {key.ljust(width)}  {value}", highlight=False)


def number(value: float | None) -> str:
    """A metric for the console: three decimals, or n/a."""
    return "n/a" if value is None else f"{value:.3f}"


def print_epoch(epoch: int, epochs: int, row: Any) -> None:
    """One line per finished training epoch (detectors: mAP; the histology head: balanced
    accuracy)."""
    if "val_patient_balanced_accuracy" in row:  # the histology head
        out.print(f"epoch {epoch}/{epochs}: val patient balanced accuracy "
                  f"{number(row.get('val_patient_balanced_accuracy'))}", highlight=False)
        return
    out.print(
        f"epoch {epoch}/{epochs}: mAP50 {number(row.get('mAP50'))}, "
        f"mAP50-95 {number(row.get('mAP50-95'))}",
        highlight=False,
    )
