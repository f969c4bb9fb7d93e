"""``detect predict URL --study/--series/--patient``: CT series from a DICOMweb server,
and ``--push``: their SRs stored back into each CT's study.

QIDO-RS lists the series of the chosen studies (a patient's studies first, for
``--patient``); CT series are fetched with WADO-RS (:func:`detect.dicomweb.fetch.fetch_instances`)
into a private temporary folder, one series at a time, the next one while the model
reads the one before (so at most three series are on disk, whatever the study's size,
and memory holds a few instances). Every other series is a skipped.csv row (``pet``,
``not-ct``), never fetched. From there the files are a folder like any other
(:func:`detect.predict.sources.scan_sources`: the same slice rules and skip reasons);
outputs name each file by its WADO-RS URL.

A fault (the server refuses, a body is cut short, ...) stops the run with one line;
``detect.predict.run`` then removes what the run wrote, and nothing is pushed: the push
happens only after every output is written. Each SR's UIDs are derived from the model and
the slices it read (:func:`detect.predict.sr.sr_uids`), so ``--push`` asks the server
(QIDO-RS) whether that SR is already there and stores only the ones that are not: a
re-run stores nothing twice.
"""

from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from detect.dicomweb.config import ServerConfig, check_uid
from detect.dicomweb.fetch import Stopped, fetch_instances
from detect.dicomweb.server import DicomwebServer, SeriesRef, connect
from detect.errors import ConfigError, DicomwebError
from detect.predict.sources import Skipped, SourceScan, scan_sources
from detect.predict.stream import Chunk, SourceStream

log = logging.getLogger(__name__)

_QIDO_WILDCARDS = ("*", "?", "\\")


@dataclass(frozen=True)
class DicomwebSelection:
    """Which series of which server to predict on, and whether to push the SRs."""

    server: ServerConfig
    studies: tuple[str, ...] = ()
    series: tuple[str, ...] = ()
    patients: tuple[str, ...] = ()
    push: bool = False

    def __post_init__(self) -> None:
        if not (self.studies or self.series or self.patients):
            raise ConfigError("a DICOMweb source needs --study, --series or --patient (detect "
                              "never reads a whole archive)")
        object.__setattr__(self, "studies", tuple(dict.fromkeys(
            check_uid("--study", s) for s in self.studies)))
        object.__setattr__(self, "series", tuple(dict.fromkeys(
            check_uid("--series", s) for s in self.series)))
        patients = tuple(dict.fromkeys(p.strip() for p in self.patients))
        for patient in patients:
            if (not patient or len(patient) > 64 or any(ch in patient for ch in _QIDO_WILDCARDS)
                    or any(ord(ch) < 32 for ch in patient)):
                raise ConfigError(f"--patient takes one PatientID (at most 64 characters, no "
                                  f"QIDO wildcard * ? or backslash), got {patient[:80]!r}")
        object.__setattr__(self, "patients", patients)


def select_series(server: DicomwebServer, selection: DicomwebSelection
                  ) -> tuple[list[SeriesRef], list[Skipped]]:
    """The CT series the selection names (each once, in the order given), and a skipped
    row for every other series of the chosen studies.

    Raises:
        DicomwebError: a patient, study or series the server does not know; no CT series.
    """
    name = server.config.name
    studies = list(selection.studies)
    for patient in selection.patients:
        found = server.patient_studies(patient)
        if not found:
            raise DicomwebError(f"{name} has no study of patient {patient!r} (QIDO-RS "
                                f"studies?PatientID=...); check the ID")
        studies += found
    refs: list[SeriesRef] = []
    for study in dict.fromkeys(studies):
        listed = server.study_series(study)
        if not listed:
            raise DicomwebError(f"{name} has no series in study {study}; check the UID")
        refs += listed
    for uid in selection.series:
        listed = server.series_by_uid(uid)
        if not listed:
            raise DicomwebError(f"{name} has no series {uid}; check the UID")
        refs += listed[:1]
    unique = list({ref.series_uid: ref for ref in refs}.values())
    ct = [ref for ref in unique if ref.modality == "CT"]
    skipped = [Skipped(f"{name}/{ref.path}", "pet" if ref.modality == "PT" else "not-ct",
                       f"series of modality {ref.modality or '?'} "
                       f"({ref.instances if ref.instances is not None else '?'} instances) "
                       f"not fetched")
               for ref in unique if ref.modality != "CT"]
    if not ct:
        kinds = ", ".join(sorted({ref.modality or "?" for ref in unique}))
        raise DicomwebError(f"no CT series on {name} for this selection (series of "
                            f"modality {kinds}); choose a study with CT")
    return ct, skipped


class DicomwebStream(SourceStream):
    """CT series of a server, one chunk per series, the next fetched in the background."""

    def __init__(self, server: DicomwebServer, refs: Sequence[SeriesRef],
                 skipped: Sequence[Skipped], *, max_pixels: int) -> None:
        self.server = server
        self.refs = tuple(refs)
        self.skipped = tuple(skipped)
        self.slices_expected = sum(ref.instances or 0 for ref in refs)
        self.max_pixels = max_pixels
        self._spool = Path(tempfile.mkdtemp(prefix="detect-dicomweb-"))
        self._stop = threading.Event()
        self._ready: queue.Queue[object] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._produce, name="detect-dicomweb",
                                        daemon=True)
        self._started = False

    def _produce(self) -> None:
        try:
            for number, ref in enumerate(self.refs, start=1):
                folder = self._spool / f"{number:05d}"
                folder.mkdir()
                uids = self.server.instance_uids(ref)
                names = {uid: folder / _file_name(i, len(uids)) for i, uid in enumerate(uids)}
                paths = fetch_instances(self.server, ref, uids, names.__getitem__,
                                        stop=self._stop)
                labels = {str(p): f"{self.server.config.name}/{ref.path}/instances/{uid}"
                          for p, uid in zip(paths, uids)}
                if not self._put((folder, labels)):
                    return
            self._put(None)
        except Stopped:
            return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    background = True

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def chunks(self) -> Iterator[Chunk]:
        self.start()
        while True:
            item = self._ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, tuple)
            folder: Path = item[0]
            labels: dict[str, str] = item[1]
            try:
                scan = scan_sources([folder], max_pixels=self.max_pixels)
                yield Chunk(_relabelled(scan, labels), labels)
            finally:
                shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        shutil.rmtree(self._spool, ignore_errors=True)
        self.server.close()

    def push(self, srs: Sequence[Dataset]) -> tuple[int, int]:
        """Store each SR in its study unless the server already holds its
        SOPInstanceUID; (stored, already there).

        Raises:
            DicomwebError: a request fails (SRs stored before it stay stored).
        """
        stored = present = 0
        for sr in srs:
            study, sop = str(sr.StudyInstanceUID), str(sr.SOPInstanceUID)
            if self.server.has_instance(study, sop):
                present += 1
                continue
            self.server.store(study, sr)
            stored += 1
        log.info("pushed %d SR(s) to %s, %d already there", stored, self.server.config.name,
                 present)
        return stored, present


def open_dicomweb(selection: DicomwebSelection, *, max_pixels: int) -> DicomwebStream:
    """Connect, check, and choose the series (nothing fetched yet).

    Raises:
        ConfigError, DicomwebError: see :func:`detect.dicomweb.server.connect` and
            :func:`select_series`.
    """
    server = connect(selection.server, max_pixels=max_pixels)
    try:
        refs, skipped = select_series(server, selection)
    except BaseException:
        server.close()
        raise
    return DicomwebStream(server, refs, skipped, max_pixels=max_pixels)


def _file_name(index: int, total: int) -> str:
    return f"{index + 1:0{max(4, len(str(total)))}d}.dcm"


def _relabelled(scan: SourceScan, labels: dict[str, str]) -> SourceScan:
    skipped = tuple(Skipped(labels.get(s.path, s.path), s.reason, s.detail)
                    for s in scan.skipped)
    return SourceScan(scan.series, skipped, scan.files_seen)
