"""``detect download``: manifest first, then s5cmd for what is missing, then the count.

A re-run with the same options fetches only the series whose folders do not hold the
manifest's number of files (and, inside those, only the missing files).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from detect.download.check import count_all, mismatch_line
from detect.download.config import DownloadConfig
from detect.download.fetch import FetchProgress, find_s5cmd, run_s5cmd
from detect.download.index import Selection
from detect.download.manifest import manifest_data, write_manifest
from detect.download.probe import check_endpoint
from detect.errors import DownloadError


@dataclass(frozen=True)
class DownloadResult:
    """What a download found, fetched and checked."""

    manifest: Path
    series: int
    series_complete_before: int
    series_fetched: int
    instances_copied: int
    bytes_copied: int
    seconds: float


def download(
    config: DownloadConfig,
    selection: Selection,
    *,
    progress: Callable[[FetchProgress], None] | None = None,
) -> DownloadResult:
    """Download ``selection`` into ``config.out`` (see the module docstring).

    Raises:
        EnvironmentProblem: s5cmd is missing (nothing is written).
        DownloadError: the endpoint does not answer one quick request (nothing is
            written); a series folder would leave OUT; after s5cmd, a series whose file
            count differs from the manifest (one line naming it); or index rows that
            were refused as unsafe.
    """
    if config.dry_run:
        raise ValueError("download() called with dry_run=True; use select_series() alone")
    start = time.perf_counter()
    binary = find_s5cmd()
    out = config.out
    before = count_all(out, selection.series)
    to_fetch = [count for count in before if count.missing]
    if to_fetch:
        check_endpoint(config.endpoint)  # before anything is written
    manifest = write_manifest(out, manifest_data(config, selection))
    result = None
    if to_fetch:
        for count in to_fetch:
            (out / count.entry.folder).mkdir(parents=True, exist_ok=True)
        result = run_s5cmd(binary, out=out, endpoint=config.endpoint, counts=to_fetch,
                           progress=progress)
    after = count_all(out, selection.series)
    if not all(count.complete for count in after):
        said = f"; s5cmd said: {result.errors[0]}" if result and result.errors else ""
        raise DownloadError(
            f"{mismatch_line(after)}{said}; run the same command again to fetch what is "
            f"missing (the manifest is {manifest})"
        )
    if selection.refused:
        first = selection.refused[0]
        raise DownloadError(
            f"downloaded {len(selection.series)} safe series, but refused "
            f"{len(selection.refused)} index row(s) with unsafe values, e.g. series "
            f"{first.series_uid!r}: {first.reason} (all listed in {manifest})"
        )
    return DownloadResult(
        manifest=manifest,
        series=len(selection.series),
        series_complete_before=len(before) - len(to_fetch),
        series_fetched=len(to_fetch),
        instances_copied=result.copied if result else 0,
        bytes_copied=result.bytes_copied if result else 0,
        seconds=time.perf_counter() - start,
    )
