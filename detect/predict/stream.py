"""What ``detect predict`` reads, as a stream of chunks of CT series.

A folder is one chunk: every header read at once (:func:`detect.predict.sources.scan_sources`).
A DICOMweb server (:mod:`detect.predict.dicomweb`) gives one chunk per series, fetched
into a temporary folder while the series before it is predicted, and removed once the
next chunk is asked for: what comes after (slice rules, skipped rows, outputs) is the
same code for both. A chunk's files exist until the next chunk is taken, so anything that
re-reads a source file (the SR's patient and study attributes) is done per chunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from detect.predict.sources import Skipped, SourceScan


@dataclass(frozen=True)
class Chunk:
    """Some CT series ready to read, and what the outputs call their files (``labels``:
    file path → name, for a server the instance's URL; absent = the path itself)."""

    scan: SourceScan
    labels: Mapping[str, str] = field(default_factory=dict)

    def label(self, path: object) -> str:
        return self.labels.get(str(path), str(path))


class SourceStream:
    """Chunks of CT series, plus what was skipped before any file was read. Use it as a
    context manager: leaving it releases whatever the source holds (a spool folder)."""

    #: Slices the source expects to hold (the progress bar's total; 0 = unknown).
    slices_expected: int = 0
    #: Rows of skipped.csv known before reading (series a server lists but never sends).
    skipped: tuple[Skipped, ...] = ()
    #: Whether :meth:`start` begins work in the background that the model's loading can
    #: overlap (a fetch); a folder is read when its first chunk is rendered.
    background: bool = False

    def start(self) -> None:
        """Begin background work, if the source has any (idempotent)."""

    def chunks(self) -> Iterator[Chunk]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds (idempotent)."""

    def __enter__(self) -> SourceStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class FolderStream(SourceStream):
    """Folders and files: one chunk, already scanned."""

    def __init__(self, scan: SourceScan) -> None:
        self._scan = scan
        self.slices_expected = sum(len(s.slices) for s in scan.series)

    def chunks(self) -> Iterator[Chunk]:
        yield Chunk(self._scan)
