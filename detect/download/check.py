"""Count what is on disk against the manifest: which series are complete.

A series is complete when its folder holds exactly the manifest's number of ``*.dcm``
files. s5cmd downloads each object into a temporary ``<name>.dcm<digits>`` beside its
target and renames it when the transfer has finished, so a ``*.dcm`` file is whole and
an interrupted transfer never counts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from detect.download.index import SeriesEntry
from detect.errors import DownloadError

INSTANCE_SUFFIX = ".dcm"


@dataclass(frozen=True)
class SeriesCount:
    """A series of the manifest and the instances (files, bytes) found for it."""

    entry: SeriesEntry
    files: int
    size_bytes: int

    @property
    def complete(self) -> bool:
        return self.files == self.entry.instances

    @property
    def missing(self) -> int:
        return max(0, self.entry.instances - self.files)


def series_dir(out: Path, entry: SeriesEntry) -> Path:
    """The folder of ``entry`` under ``out``, checked to stay inside ``out`` once links
    are followed.

    Raises:
        DownloadError: the folder would lie outside ``out`` (a symbolic link in the way).
    """
    folder = out / entry.folder
    root = out.resolve()
    if not folder.resolve().is_relative_to(root):
        raise DownloadError(
            f"{folder} leads outside {out} (a symbolic link?); nothing is written there: "
            f"remove the link or choose another OUT"
        )
    return folder


def count_series(out: Path, entry: SeriesEntry) -> SeriesCount:
    """The complete ``*.dcm`` files (regular files, not links) in the series folder."""
    folder = series_dir(out, entry)
    files = size = 0
    try:
        with os.scandir(folder) as entries:
            for item in entries:
                if item.name.endswith(INSTANCE_SUFFIX) and item.is_file(follow_symlinks=False):
                    files += 1
                    size += item.stat(follow_symlinks=False).st_size
    except FileNotFoundError:
        pass
    return SeriesCount(entry, files, size)


def count_all(out: Path, entries: Iterable[SeriesEntry]) -> list[SeriesCount]:
    return [count_series(out, entry) for entry in entries]


def mismatch_line(counts: list[SeriesCount], *, shown: int = 3) -> str:
    """One line naming the series whose file count differs from the manifest."""
    bad = [count for count in counts if not count.complete]
    parts = [
        f"{c.entry.series_uid} ({c.entry.patient_id} {c.entry.modality}, "
        f"{c.files} of {c.entry.instances} files)"
        for c in bad[:shown]
    ]
    more = f" and {len(bad) - shown} more" if len(bad) > shown else ""
    return f"{len(bad)} of {len(counts)} series do not match the manifest: {'; '.join(parts)}{more}"
