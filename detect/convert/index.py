"""Index a DICOM tree by header only: SOPInstanceUID → file, series, patient, position.

Files are found by walking the tree (:func:`detect.io.walk.walk_tree`: links followed,
each real folder once, loops and dangling links reported as issues), identified by their
headers (never by names), read without pixel data in parallel workers. Results are cached
in the output folder keyed by (path, size, mtime), so a re-run or another shard re-reads
only what changed.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from detect.convert.issues import Issue
from detect.errors import DicomError
from detect.io.atomic import write_json_table
from detect.io.dicom import DEFAULT_MAX_PIXELS, NotDicomError, SliceHeader, read_header
from detect.io.dicom_identity import instance_conflict
from detect.io.slice_order import Stacking, neighbour_indices, sort_slices
from detect.io.walk import walk_tree
from detect.workers import worker_pool

log = logging.getLogger(__name__)

CACHE_NAME = "dicom-index.json"
_CACHE_VERSION = 4  # 2: headers carry has_rescale; 3: rescale, thickness and spacing values;
# 4: AcquisitionNumber
_SKIP_SUFFIXES = frozenset({".xml"})  # annotation files that sit in the DICOM tree


@dataclass
class DicomIndex:
    """Every readable DICOM file of a tree, and every file that could not be read."""

    root: Path
    by_sop: dict[str, SliceHeader] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    #: SOPInstanceUIDs carried by files that disagree (neither used) → what differs
    conflicts: dict[str, str] = field(default_factory=dict)
    files_seen: int = 0
    _series_cache: dict[str, list[SliceHeader]] | None = field(default=None, repr=False)
    _neighbour_cache: dict[tuple[str, Stacking], list[tuple[int, ...]]] = field(
        default_factory=dict, repr=False)

    def series(self) -> dict[str, list[SliceHeader]]:
        """SeriesInstanceUID → its slices in geometric order."""
        if self._series_cache is None:
            grouped: dict[str, list[SliceHeader]] = {}
            for header in self.by_sop.values():
                grouped.setdefault(header.series_instance_uid, []).append(header)
            self._series_cache = {uid: sort_slices(items) for uid, items in grouped.items()}
        return self._series_cache

    def slice_position(self, header: SliceHeader) -> int:
        """Index of a slice in its sorted series."""
        return self.series()[header.series_instance_uid].index(header)

    def neighbours(self, series_uid: str, stacking: Stacking) -> list[tuple[int, ...]]:
        """:func:`~detect.io.slice_order.neighbour_indices` of one series, for each of its
        slices in order, in ``stacking.offsets`` order (kept)."""
        key = (series_uid, stacking)
        if key not in self._neighbour_cache:
            self._neighbour_cache[key] = neighbour_indices(
                self.series()[series_uid], stacking.offsets, stacking.step_mm)
        return self._neighbour_cache[key]


def walk_issues(root: Path, *, exclude: Iterable[Path] = (), source: str) -> tuple[
    list[Path], list[Issue]
]:
    """Every regular file under ``root`` (links followed, each once), and an issue for
    every entry that could not be walked (``source`` names the root: dicom/annotation)."""
    walked = walk_tree(root, exclude=exclude)
    issues = [
        Issue(skip.kind, str(skip.path.relative_to(root)), skip.detail, root=source)
        for skip in walked.skipped
    ]
    return walked.files, issues


def _header_or_issue(path: Path, root: Path) -> SliceHeader | Issue:
    relative = str(path.relative_to(root))
    try:
        return read_header(path)
    except NotDicomError as exc:
        return Issue("not-dicom", relative, str(exc), root="dicom")
    except DicomError as exc:
        return Issue("unsupported-dicom", relative, str(exc), root="dicom")
    except OSError as exc:
        return Issue("unreadable-dicom", relative, f"{path.name}: {exc}", root="dicom")


def _read_chunk(paths: list[str], root: str) -> list[dict[str, Any]]:
    """Worker: headers of a chunk of files, as plain dicts (cheap to send back)."""
    out: list[dict[str, Any]] = []
    for text in paths:
        result = _header_or_issue(Path(text), Path(root))
        if isinstance(result, Issue):
            out.append({"issue": result.to_json()})
        else:
            out.append({"header": _header_to_json(result)})
    return out


def _header_to_json(header: SliceHeader) -> dict[str, Any]:
    data = {f.name: getattr(header, f.name) for f in fields(header)}  # shallow: asdict is slow
    data["path"] = str(header.path)
    return data


#: Header values that repeat across the slices of a series: one string object each.
_SHARED = ("series_instance_uid", "study_instance_uid", "patient_id", "modality",
           "sop_class_uid", "photometric", "series_description")


def _header_from_json(data: dict[str, Any]) -> SliceHeader:
    values = dict(data)
    values["path"] = Path(values["path"])
    for key in _SHARED:
        if isinstance(values.get(key), str):
            values[key] = sys.intern(values[key])
    for key in ("position", "orientation", "pixel_spacing"):
        if values[key] is not None:
            values[key] = tuple(values[key])
    return SliceHeader(**values)


def _stat_key(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return ""  # gone or unreadable since the walk: read again, and reported then
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _load_cache(cache_path: Path | None) -> dict[str, Any]:
    if cache_path is None or not cache_path.is_file():
        return {}
    try:
        data = json.loads(cache_path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if data.get("version") != _CACHE_VERSION:
        return {}
    return dict(data.get("files", {}))


def _save_cache(cache_path: Path, files: dict[str, Any]) -> None:
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    write_json_table(cache_path, {"version": _CACHE_VERSION}, "files", files)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def build_index(
    root: Path,
    *,
    workers: int = 1,
    cache_path: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    exclude: Iterable[Path] = (),
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> DicomIndex:
    """Read the header of every file under ``root`` (never entering ``exclude``).

    Files that are not DICOM, or DICOM without what an image slice needs, become issues
    (``not-dicom``, ``unsupported-dicom``, ``unreadable-dicom``), and so does every entry
    the walk could not follow (``symlink-loop``, ``dangling-link``, ``duplicate-path``,
    ``unreadable-path``). A SOPInstanceUID in two files holding the same instance keeps
    the first file and reports the second (``unsupported-dicom``); in two files that
    differ (patient, series, place, pixels: :mod:`detect.io.dicom_identity`, pixels
    compared up to ``max_pixels``) it is a ``uid-conflict`` for every file and neither is
    used.
    """
    root = root.resolve()
    walked, walk_problems = walk_issues(root, exclude=exclude, source="dicom")
    files = [p for p in walked if p.suffix.lower() not in _SKIP_SUFFIXES]
    cached = _load_cache(cache_path)
    keys = {str(p): _stat_key(p) for p in files}
    todo = [str(p) for p in files if cached.get(str(p), {}).get("key") != keys[str(p)]]
    todo_set = set(todo)
    results: dict[str, Any] = {str(p): cached[str(p)] for p in files if str(p) not in todo_set}
    done = len(results)
    if progress:
        progress(done, len(files))
    chunk_size = max(1, min(256, len(todo) // (workers * 8) or 1))
    fresh = _run_chunks(todo, str(root), workers, chunk_size)
    for chunk_paths, chunk_results in fresh:
        for path_text, result in zip(chunk_paths, chunk_results):
            results[path_text] = {"key": keys[path_text], **result}
        done += len(chunk_paths)
        if progress:
            progress(done, len(files))
    if cache_path is not None and todo:
        _save_cache(cache_path, results)
    index = _assemble(root, files, results, max_pixels)
    index.issues[:0] = walk_problems
    return index


def _run_chunks(
    todo: list[str], root: str, workers: int, chunk_size: int
) -> Iterator[tuple[list[str], list[dict[str, Any]]]]:
    chunks = list(_chunks(todo, chunk_size))
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield chunk, _read_chunk(chunk, root)
        return
    with worker_pool(workers) as pool:
        yield from zip(chunks, pool.map(_read_chunk, chunks, [root] * len(chunks)))


def _assemble(root: Path, files: list[Path], results: dict[str, Any],
              max_pixels: int = DEFAULT_MAX_PIXELS) -> DicomIndex:
    index = DicomIndex(root=root, files_seen=len(files))
    copies: dict[str, list[SliceHeader]] = {}
    for path in files:
        result = results.pop(str(path))  # freed as it becomes a header
        if "issue" in result:
            index.issues.append(Issue.from_json(result["issue"]))
            continue
        header = _header_from_json(result["header"])
        if header.sop_instance_uid in index.by_sop:
            copies.setdefault(header.sop_instance_uid, []).append(header)
            continue
        index.by_sop[header.sop_instance_uid] = header
    for sop, others in copies.items():
        _duplicates(index, index.by_sop[sop], others, max_pixels)
    return index


def _duplicates(index: DicomIndex, first: SliceHeader, others: list[SliceHeader],
                max_pixels: int) -> None:
    """Report the files that repeat ``first``'s UID; on any difference, drop the UID."""
    root = index.root
    differences = [instance_conflict(first, other, max_pixels=max_pixels) for other in others]
    if not any(differences):
        for other in others:
            index.issues.append(Issue(
                "unsupported-dicom", str(other.path.relative_to(root)),
                f"duplicate SOPInstanceUID {other.sop_instance_uid} (the same instance); "
                f"kept {first.path.relative_to(root)}", root="dicom",
            ))
        return
    sop = first.sop_instance_uid
    paths = [str(h.path.relative_to(root)) for h in (first, *others)]
    why = next(d for d in differences if d)
    detail = (f"SOPInstanceUID {sop} is in {len(paths)} files that differ ({why}): "
              f"{', '.join(paths)}; neither is used, so no box lands on the wrong slice")
    del index.by_sop[sop]
    index.conflicts[sop] = detail
    index.issues.extend(Issue("uid-conflict", path, detail, root="dicom") for path in paths)
