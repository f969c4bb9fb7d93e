"""What ``detect predict`` and ``detect download`` share for a DICOMweb server: the
options, and turning a SOURCE that is a URL into a server selection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from detect.cli.app import out
from detect.dicomweb.config import ServerConfig, is_url
from detect.errors import ConfigError

if TYPE_CHECKING:
    from detect.predict.dicomweb import DicomwebSelection

DICOMWEB_AUTH_FILE: Any = typer.Option(
    "--auth-file", metavar="FILE",
    help="DICOMweb: a private (mode 600) file of DETECT_DICOMWEB_USER=, "
         "DETECT_DICOMWEB_PASSWORD= or DETECT_DICOMWEB_TOKEN= lines.")
DICOMWEB_CA_BUNDLE: Any = typer.Option(
    "--ca-bundle", metavar="PEM", help="DICOMweb: PEM file of the certificate authorities to trust "
                        "(TLS is always verified).")
DICOMWEB_TIMEOUT: Any = typer.Option(
    "--timeout", metavar="SECONDS", help="DICOMweb: seconds a read may wait for the server.")


@dataclass(frozen=True)
class DicomwebOptions:
    """The DICOMweb options of ``detect predict`` as typed."""

    studies: Sequence[str]
    series: Sequence[str]
    patients: Sequence[str]
    push: bool
    auth_file: Path | None
    ca_bundle: Path | None
    timeout_s: float

    @property
    def given(self) -> list[str]:
        names = {"--study": self.studies, "--series": self.series, "--patient": self.patients,
                 "--push": self.push, "--auth-file": self.auth_file,
                 "--ca-bundle": self.ca_bundle}
        return [name for name, value in names.items() if value]


def predict_source(sources: Sequence[str], options: DicomwebOptions
                   ) -> tuple[tuple[Path, ...], DicomwebSelection | None]:
    """Folders and files, or (when the one SOURCE is an http(s) URL) a DICOMweb selection.

    Raises:
        ConfigError: a URL among folders, or DICOMweb options without a URL.
    """
    urls = [s for s in sources if is_url(s)]
    if not urls:
        if options.given:
            raise ConfigError(f"{', '.join(options.given)} need a DICOMweb URL as SOURCE "
                              f"(like https://pacs.example.org/dicom-web)")
        return tuple(Path(s) for s in sources), None
    if len(sources) > 1:
        raise ConfigError("a DICOMweb URL is the only SOURCE of a run; predict folders and "
                          "servers in separate runs")
    from detect.predict.dicomweb import DicomwebSelection

    server = ServerConfig(urls[0], auth_file=options.auth_file, ca_bundle=options.ca_bundle,
                          timeout_s=options.timeout_s)
    return (), DicomwebSelection(server, tuple(options.studies), tuple(options.series),
                                 tuple(options.patients), options.push)


def print_push(pushed: tuple[int, int] | None, selection: DicomwebSelection | None) -> None:
    if pushed is None or selection is None:
        return
    stored, present = pushed
    out.print(f"pushed {stored} SR(s) to {selection.server.name}; {present} already there",
              highlight=False, markup=False, soft_wrap=True)
