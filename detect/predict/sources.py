"""Find CT series in any DICOM folders or files, and render their slices for a model.

Files are identified by their headers (never by names), grouped by SeriesInstanceUID and
ordered by geometry (:func:`detect.io.slice_order.sort_slices`). Everything that cannot be used is
kept as a :class:`Skipped` entry with its reason; one bad file never stops the run.

Folders are walked by :func:`detect.io.walk.walk_trees`: links are followed, each real
folder and file once.

Skip reasons: ``not-dicom``, ``unreadable`` (I/O error), ``unsupported-dicom`` (DICOM but
not an image slice), ``fused`` (secondary-capture / colour PET-CT screenshots), ``pet``,
``not-ct`` (any other modality), ``multi-frame``, ``image-too-large`` (declares more pixel
samples than the limit; never decoded), ``missing-rescale`` (a CT slice without
RescaleSlope/RescaleIntercept), ``implausible-value`` (a rescale or geometry value that is
not a finite number in its plausible range, :mod:`detect.io.dicom_values`; or, found
while predicting, HU that are not finite), ``duplicate`` (a SOPInstanceUID seen before,
in a file holding the same instance), ``uid-conflict`` (a SOPInstanceUID in files that
differ: every one is skipped), ``symlink-loop``, ``dangling-link``, ``duplicate-path``,
``unreadable-path`` (entries the walk could not follow), ``pixel-error`` (header fine,
pixels not decodable; found while predicting).

This module stays light (numpy, pydicom): worker processes import it, not torch.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from detect.errors import DicomError
from detect.io.dicom import (
    DEFAULT_MAX_PIXELS,
    NotDicomError,
    SliceHeader,
    decode_issue_kind,
    read_header,
    read_hu,
)
from detect.io.dicom_identity import instance_conflict
from detect.io.slice_order import neighbour_indices, sort_slices
from detect.io.walk import walk_trees
from detect.lung.field import air_inside_body
from detect.recipe import WINDOW_PRESETS, ChannelRecipe, Window
from detect.workers import worker_pool

T = TypeVar("T")
R = TypeVar("R")
LUNG = Window("lung", *WINDOW_PRESETS["lung"])
#: Fewer files than this are read in this process: a header takes ~0.6 ms, starting
#: spawned workers ~0.5 s.
_PARALLEL_MIN = 2000


@dataclass(frozen=True)
class Skipped:
    """A file that was not predicted on, and why."""

    path: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Series:
    """One CT series: its slices in geometric order."""

    uid: str
    patient_id: str
    description: str
    slices: tuple[SliceHeader, ...]


@dataclass(frozen=True)
class SourceScan:
    """All CT series found, every file skipped, and how many files were looked at."""

    series: tuple[Series, ...]
    skipped: tuple[Skipped, ...]
    files_seen: int


def walk_sources(sources: Sequence[Path]) -> tuple[list[Path], list[Skipped]]:
    """Every regular file named by or under ``sources`` (each once, in a stable order),
    and every entry that could not be walked (links that loop or dangle, unreadable).

    Raises:
        DicomError: a source does not exist.
    """
    for source in sources:
        if not source.exists():
            raise DicomError(f"SOURCE {source} does not exist; pass DICOM folders or files")
    walked = walk_trees(sources)
    skipped = [Skipped(str(s.path), s.kind, s.detail) for s in walked.skipped]
    return walked.files, skipped


def find_files(sources: Sequence[Path]) -> list[Path]:
    """The files of :func:`walk_sources`.

    Raises:
        DicomError: a source does not exist.
    """
    return walk_sources(sources)[0]


def header_or_skip(path: Path) -> SliceHeader | Skipped:
    """The header of one file, or why it cannot be used."""
    try:
        return read_header(path)
    except NotDicomError as exc:
        return Skipped(str(path), "not-dicom", str(exc))
    except DicomError as exc:
        return Skipped(str(path), "unsupported-dicom", str(exc))
    except OSError as exc:
        return Skipped(str(path), "unreadable", f"{path.name}: {exc.strerror or exc}")


def skip_reason(
    header: SliceHeader, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[str, str] | None:
    """Why a readable slice is not predicted on, or None for a plain CT slice
    (:meth:`detect.io.dicom.SliceHeader.unusable`, reasons as they are)."""
    return header.unusable(max_pixels)


def parallel_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    workers: int,
    chunksize: int = 16,
    min_items: int = _PARALLEL_MIN,
) -> Iterator[R]:
    """``map`` in order, in worker processes (spawned, so no torch state is forked) when
    there are at least ``min_items`` items, else in this process."""
    if workers <= 1 or len(items) < min_items:
        yield from map(fn, items)
        return
    with worker_pool(workers, start_method="spawn") as pool:
        yield from pool.map(fn, items, chunksize=chunksize)


def _group(headers: Iterable[SliceHeader], max_pixels: int = DEFAULT_MAX_PIXELS
           ) -> tuple[list[Series], list[Skipped]]:
    by_sop: dict[str, list[SliceHeader]] = {}
    for header in headers:
        by_sop.setdefault(header.sop_instance_uid, []).append(header)
    by_series: dict[str, list[SliceHeader]] = {}
    skipped: list[Skipped] = []
    for sop, copies in by_sop.items():
        first, others = copies[0], copies[1:]
        differences = [instance_conflict(first, o, max_pixels=max_pixels) for o in others]
        if any(differences):
            why = next(d for d in differences if d)
            paths = ", ".join(str(h.path) for h in copies)
            skipped.extend(Skipped(str(h.path), "uid-conflict",
                                   f"SOPInstanceUID {sop} is in {len(copies)} files that "
                                   f"differ ({why}): {paths}; none is predicted on")
                           for h in copies)
            continue
        skipped.extend(Skipped(str(o.path), "duplicate",
                               f"SOPInstanceUID {sop} seen before (the same instance)")
                       for o in others)
        by_series.setdefault(first.series_instance_uid, []).append(first)
    series = []
    for uid, items in sorted(by_series.items(), key=lambda kv: (kv[1][0].patient_id, kv[0])):
        ordered = tuple(sort_slices(items))
        series.append(Series(uid, ordered[0].patient_id, ordered[0].series_description, ordered))
    return series, skipped


def scan_sources(
    sources: Sequence[Path],
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    min_parallel: int = _PARALLEL_MIN,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> SourceScan:
    """Read every file's header (in ``workers`` processes for ``min_parallel`` files or
    more) and keep the CT series; slices declaring more than ``max_pixels`` pixel samples
    are skipped (``image-too-large``) before anything decodes them.

    Raises:
        DicomError: a source does not exist.
    """
    files, skipped = walk_sources(sources)
    usable: list[SliceHeader] = []
    results = parallel_map(header_or_skip, files, workers, 64, min_parallel)
    for done, result in enumerate(results, start=1):
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            reason = skip_reason(result, max_pixels)
            if reason is None:
                usable.append(result)
            else:
                skipped.append(Skipped(str(result.path), *reason))
        if progress is not None and (done % 64 == 0 or done == len(files)):
            progress(done, len(files))
    series, duplicates = _group(usable, max_pixels)
    return SourceScan(tuple(series), tuple(skipped + duplicates), len(files))


@dataclass(frozen=True)
class SliceJob:
    """One slice to render: its path and the paths of the neighbours the recipe needs.
    ``air_block`` > 0: also its air inside the body on blocks of that many pixels
    (:func:`detect.lung.field.air_inside_body`, below ``air_hu``), for the lung field.
    ``reach``: how many places of the series away its farthest neighbour is."""

    index: int
    neighbours: tuple[tuple[int, str], ...]
    recipe: dict[str, Any]
    lung: bool
    max_pixels: int = DEFAULT_MAX_PIXELS
    air_block: int = 0
    air_hu: float = -400.0
    reach: int = 1


@dataclass(frozen=True)
class Rendered:
    """A rendered slice (H × W × 3 uint8, recipe order), its lung-window grey image when
    asked for, or the error that stopped it; ``air``: its air inside the body when the job
    asked for it (bool blocks, see :class:`SliceJob`)."""

    index: int
    image: np.ndarray | None
    lung: np.ndarray | None
    error: str | None
    reason: str = "pixel-error"
    air: np.ndarray | None = None


def slice_jobs(
    series: Series, recipe: ChannelRecipe, lung: bool, *, max_pixels: int = DEFAULT_MAX_PIXELS,
    air_block: int = 0, air_hu: float = -400.0,
) -> list[SliceJob]:
    """Jobs for every slice of a series; neighbours are found in the slice's own
    acquisition and clamp at its ends (:func:`~detect.io.slice_order.neighbour_indices`)."""
    offsets = recipe.neighbours
    picks = neighbour_indices(series.slices, offsets, recipe.step_mm)
    recipe_dict = recipe.to_dict()
    return [
        SliceJob(
            index=i,
            neighbours=tuple(
                (offset, str(series.slices[j].path)) for offset, j in zip(offsets, picks[i])
            ),
            recipe=recipe_dict,
            lung=lung,
            max_pixels=max_pixels,
            air_block=air_block,
            air_hu=air_hu,
            reach=max((abs(j - i) for j in picks[i]), default=0),
        )
        for i in range(len(series.slices))
    ]


#: The most decoded slices a :class:`SliceRenderer` keeps (a 512² slice is 1 MB of HU).
_MOST_KEPT = 32


class RecentSlices:
    """The last ``size`` slices decoded by one stream of jobs, by path: with a 2.5D recipe
    the neighbours of slice i are slices i-1 and i+1, so a stream in slice order decodes
    each file once instead of three times. Arrays are handed out read-only (shared)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()

    def read(self, path: str, max_pixels: int) -> np.ndarray:
        """HU of ``path`` (decoded now, or kept from a recent job).

        Raises:
            DicomError: as :func:`detect.io.dicom.read_hu` (failures are not kept).
        """
        hu = self._items.get(path)
        if hu is not None:
            self._items.move_to_end(path)
            return hu
        hu = read_hu(Path(path), max_pixels=max_pixels)
        hu.setflags(write=False)
        self._items[path] = hu
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return hu


class SliceRenderer:
    """:func:`render_job` with a :class:`RecentSlices` of its own: one per stream of jobs
    in slice order (a process worker gets its own copy, empty, and decodes as before)."""

    def __init__(self, recipe: ChannelRecipe) -> None:
        offsets = recipe.neighbours
        self.recent = RecentSlices(max(offsets) - min(offsets) + 2)

    def __call__(self, job: SliceJob) -> Rendered:
        # a series of interleaved acquisitions puts a slice's neighbours `reach` places away
        self.recent.size = max(self.recent.size, min(2 * job.reach + 2, _MOST_KEPT))
        return render_job(job, self.recent)


def render_job(job: SliceJob, recent: RecentSlices | None = None) -> Rendered:
    """Decode HU and apply the recipe (a neighbour that fails is replaced by the slice);
    ``recent``: decoded slices to reuse (see :class:`RecentSlices`)."""
    def read(path: str) -> np.ndarray:
        if recent is None:
            return read_hu(Path(path), max_pixels=job.max_pixels)
        return recent.read(path, job.max_pixels)

    paths = dict(job.neighbours)
    try:
        centre = read(paths[0])
    except DicomError as exc:
        return Rendered(job.index, None, None, str(exc), decode_issue_kind(exc, "pixel-error"))
    by_offset = {}
    for offset, path in job.neighbours:
        try:
            by_offset[offset] = centre if offset == 0 else read(path)
        except DicomError:
            by_offset[offset] = centre
        if by_offset[offset].shape != centre.shape:
            by_offset[offset] = centre
    image = ChannelRecipe.from_dict(job.recipe).render(by_offset)
    air = (air_inside_body(centre, air_hu=job.air_hu, block=job.air_block)
           if job.air_block > 0 else None)
    return Rendered(job.index, image, LUNG.apply(centre) if job.lung else None, None, air=air)


def bounded_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int, window: int
) -> Iterator[R]:
    """``map`` in order over a lazy iterable, at most ``window`` items in flight, in
    spawned worker processes when ``workers > 1`` (memory stays bounded on huge folders)."""
    if workers <= 1:
        yield from map(fn, items)
        return
    from collections import deque
    from concurrent.futures import Future

    pool: Executor
    with worker_pool(workers, start_method="spawn") as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class Prefetch(Iterator[R]):
    """Run an iterator in a background thread, up to ``depth`` results ahead, from the moment
    it is created: the work behind it (reading and rendering slices, in worker processes or
    in the thread) starts at once and goes on while the caller does something else (loading
    the model). Results come in order; an exception in the iterator is raised in the caller
    at its place in the stream. Use it as a context manager: leaving stops the thread and
    closes the iterator (its worker processes end with it).
    """

    _DONE = object()

    def __init__(self, items: Iterator[R], depth: int) -> None:
        self._items = items
        self._buffer: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="detect-prefetch",
                                        daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    break
            else:
                self._put(self._DONE)
        except BaseException as exc:  # handed over, raised in the consumer
            self._put(_Raised(exc))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Prefetch[R]:
        return self

    def __next__(self) -> R:
        item = self._buffer.get()
        if item is self._DONE:
            self._buffer.put(item)  # stays exhausted
            raise StopIteration
        if isinstance(item, _Raised):
            raise item.error
        return item

    def close(self) -> None:
        """Stop producing and wait for the thread (and the iterator's workers) to end."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetch[R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Raised:
    """An exception raised by the producer thread, handed to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
