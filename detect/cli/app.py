"""The Typer application every ``detect`` command registers on, and what they share:
library errors (``DetectError``) become one line on stderr and exit code 1 (usage errors
are Typer's, exit code 2, and so is a command that needs the training packages the base
install lacks; Ctrl-C exits 130), a progress bar, and table printing."""

from __future__ import annotations

import logging
import re
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
from typer.core import TyperCommand

from detect import __version__
from detect.errors import DetectError, TrainingStackMissing

#: Typer's type placeholders → the conventional ones (click's); flags and lists show none.
_PLACEHOLDERS = {"path": "PATH", "int": "INTEGER", "float": "FLOAT", "str": "TEXT",
                 "bool": "", "list[Path]": "", "list[str]": ""}
_TYPE = re.compile(r" <([A-Za-z_\[\]]+)>")


class Command(TyperCommand):
    """A detect command's help: options as ``--out PATH``, flags bare, SOURCE... without a
    Python type after it (Typer writes ``<bool>``, ``<list[Path]>``)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """``DICOM_ROOT ANNOTATION_ROOT OUT``, ``SOURCE...`` (Typer writes ``{OUT}``,
        ``{SOURCE...}...``)."""
        pieces = [re.sub(r"\{([^}]*)\}", r"\1", piece)
                  for piece in super().collect_usage_pieces(ctx)]
        return [re.sub(r"(\.\.\.)+$", "...", piece) for piece in pieces]

    def format_options(self, ctx: Any, formatter: Any) -> None:  # typer's own click types
        sections: dict[str, list[tuple[str, str]]] = {"Arguments": [], "Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                name = _TYPE.sub(lambda m: " " + _PLACEHOLDERS.get(m.group(1), m.group(1).upper()),
                                 record[0]).rstrip()
                key = "Arguments" if param.param_type_name == "argument" else "Options"
                sections[key].append((name, record[1]))
        for title, rows in sections.items():
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


app = typer.Typer(
    name="detect",
    help="Lung tumour detection and histology on CT / PET-CT DICOM (TCIA Lung-PET-CT-Dx).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: PATH, INTEGER, TEXT placeholders, none for flags (typer's rich help
    # printed <bool> after every flag and <list[Path]> after SOURCE...)
    rich_markup_mode=None,
)
console = Console(stderr=True)
out = Console()


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one line and exit 1; Ctrl-C into exit 130."""
    try:
        yield
    except TrainingStackMissing as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
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
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Log details, and show the engines' own output (ultralytics' "
                                "arguments, layers and progress bars); anywhere on the line.")
    ] = False,
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
