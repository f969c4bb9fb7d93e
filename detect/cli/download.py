"""``detect download``: a collection from Imaging Data Commons, through s5cmd."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from detect.cli.app import Command, app, console, out, user_errors
from detect.cli.dicomweb import DICOMWEB_AUTH_FILE, DICOMWEB_CA_BUNDLE, DICOMWEB_TIMEOUT
from detect.errors import ConfigError

if TYPE_CHECKING:
    from detect.download import DownloadConfig, DownloadResult, FetchProgress, Selection


@app.command(cls=Command)
def download(
    out_dir: Annotated[
        Path, typer.Argument(metavar="OUT", help="Folder to download into (created).")
    ],
    collection: Annotated[str, typer.Option(help="IDC collection id.")] = "lung_pet_ct_dx",
    patients: Annotated[
        str | None, typer.Option(help="Patient IDs, e.g. Lung_Dx-A0002,Lung_Dx-B0021.")
    ] = None,
    letters: Annotated[
        str | None, typer.Option(help="Histology letters from the patient IDs: A,B,E,G.")
    ] = None,
    modality: Annotated[
        str, typer.Option(help="CT, SR (IDC's tumour boxes as DICOM SR) and/or PT.")
    ] = "CT,SR",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the selection; write nothing.")
    ] = False,
    endpoint: Annotated[
        str, typer.Option(help="S3 endpoint: IDC's AWS buckets, a mirror or a local S3.")
    ] = "https://s3.amazonaws.com",
    dicomweb: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Fetch from this DICOMweb service root instead of IDC."),
    ] = None,
    study: Annotated[
        list[str] | None,
        typer.Option(metavar="UID", help="DICOMweb: a StudyInstanceUID (repeatable).")
    ] = None,
    patient: Annotated[
        list[str] | None,
        typer.Option(metavar="ID", help="DICOMweb: a PatientID (repeatable; or --patients).")
    ] = None,
    auth_file: Annotated[Path | None, DICOMWEB_AUTH_FILE] = None,
    ca_bundle: Annotated[Path | None, DICOMWEB_CA_BUNDLE] = None,
    timeout: Annotated[float, DICOMWEB_TIMEOUT] = 30.0,
) -> None:
    """Download CT, PET and the tumour boxes (DICOM SR) from Imaging Data Commons, or the
    chosen studies of a DICOMweb server (a PACS).

    The IDC selection comes from the IDC index installed with idc-index (offline); the files
    come from IDC's public buckets through s5cmd, into
    OUT/<collection>/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/, with
    OUT/idc-manifest.json listing what was selected. Re-running resumes. With --dicomweb
    the same layout and manifest come from QIDO-RS and WADO-RS.

    Example: detect download lpcd --letters E --modality CT,SR --dry-run

    Example: detect download pacs --dicomweb https://pacs/dicom-web --study 1.2.3
    """
    from detect.download import DownloadConfig, download, parse_list, select_series

    with user_errors():
        server = None
        if dicomweb is not None:
            from detect.dicomweb.config import ServerConfig

            server = ServerConfig(dicomweb, auth_file=auth_file, ca_bundle=ca_bundle,
                                  timeout_s=timeout)
        elif study or patient or auth_file or ca_bundle:
            raise ConfigError("--study, --patient, --auth-file and --ca-bundle are for a "
                              "DICOMweb server: pass --dicomweb URL")
        config = DownloadConfig(
            out=out_dir,
            collection=collection,
            patients=(*parse_list(patients, "--patients"), *(patient or [])),
            letters=parse_list(letters, "--letters"),
            modalities=parse_list(modality, "--modality"),
            dry_run=dry_run,
            endpoint=endpoint,
            dicomweb=server,
            studies=tuple(study or ()),
        )
        if config.dicomweb is not None:
            result = _from_server(config)
            if result is None:
                return
        else:
            selection = select_series(config)
            _print_selection(selection)
            if dry_run:
                out.print("dry run: nothing written, nothing downloaded")
                return
            with _transfer_bar() as update:
                result = download(config, selection, progress=update)
    out.print(
        f"downloaded {result.instances_copied} files ({_size(result.bytes_copied)}) for "
        f"{result.series_fetched} series in {result.seconds:.1f}s; "
        f"{result.series_complete_before} series were already complete",
        highlight=False,
        soft_wrap=True,
    )
    out.print(f"all {result.series} series match the manifest {result.manifest}",
              highlight=False, markup=False, soft_wrap=True)
    out.print(f"DICOM root for detect convert: {out_dir / collection}",
              highlight=False, markup=False, soft_wrap=True)


def _from_server(config: DownloadConfig) -> DownloadResult | None:
    """Select and (unless --dry-run) fetch from the DICOMweb server."""
    from detect.dicomweb.server import connect
    from detect.download.dicomweb import download_from_server, select_on_server
    from detect.io.dicom import DEFAULT_MAX_PIXELS

    assert config.dicomweb is not None
    server = connect(config.dicomweb, max_pixels=DEFAULT_MAX_PIXELS)
    try:
        chosen = select_on_server(config, server)
        _print_selection(chosen.selection)
        if config.dry_run:
            out.print("dry run: nothing written, nothing downloaded")
            return None
        with _transfer_bar() as update:
            return download_from_server(config, chosen, server, progress=update)
    finally:
        server.close()


def _print_selection(selection: Selection) -> None:
    out.print(
        f"{selection.collection} ({selection.index_version}): {selection.patients} patients, "
        f"{len(selection.series)} series, {selection.instances} instances, "
        f"{_size(selection.size_bytes)}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    out.print(f"  {'modality':<9}{'series':>8}{'instances':>11}{'size':>11}{'patients':>10}",
              highlight=False)
    for modality, row in selection.by_modality().items():
        out.print(
            f"  {modality:<9}{row['series']:>8}{row['instances']:>11}"
            f"{_size(row['size_bytes']):>11}{row['patients']:>10}",
            highlight=False,
        )
    letters = ", ".join(f"{k} {v}" for k, v in selection.patients_by_letter().items())
    out.print(f"  patients by letter: {letters}", highlight=False)
    if selection.refused:
        out.print(
            f"  refused {len(selection.refused)} index row(s) with unsafe values, e.g. "
            f"{selection.refused[0].reason}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _size(size_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes} B"


@contextmanager
def _transfer_bar() -> Iterator[Callable[[FetchProgress], None]]:
    """A rich bar in bytes, with the file and series counts beside it; where stderr is not
    a terminal (a log, CI), one line per finished series instead."""
    terminal = console.is_terminal
    with Progress(
        TextColumn("[bold]download"),
        BarColumn(),
        DownloadColumn(binary_units=False),
        TransferSpeedColumn(),
        TextColumn("{task.fields[instances]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not terminal,
    ) as bar:
        task = bar.add_task("download", total=None, instances="")
        printed = [0]

        def update(state: FetchProgress) -> None:
            bar.update(
                task,
                completed=state.bytes_done,
                total=max(state.bytes_total, state.bytes_done) or None,
                instances=f"{state.instances_done}/{state.instances_total} files, series "
                          f"{state.series_done}/{state.series_total}",
            )
            if not terminal and state.series_done > printed[0]:
                printed[0] = state.series_done
                console.print(f"series {state.series_done}/{state.series_total} done: "
                              f"{state.last_series} ({state.instances_done}/"
                              f"{state.instances_total} files)",
                              highlight=False, markup=False, soft_wrap=True)

        yield update
