"""``detect download --dicomweb URL --study/--patient``: training data from a PACS.

The same layout, manifest, counting and resume as the IDC path: QIDO-RS lists the series
of the chosen studies (a patient's studies first) and the instances of each series (the
manifest's exact counts); WADO-RS fetches the instances a series folder lacks, several at
once, each into ``OUT/<collection>/<PatientID>/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm``
written under a temporary name and renamed (:mod:`detect.dicomweb.fetch`), so a counted
file is whole and a re-run fetches only what is missing. Every value from the server is
checked before it becomes a path (:mod:`detect.download.names`); a series that fails is
refused and reported, as an unsafe index row is. Sizes are unknown to QIDO-RS: the
manifest says 0 bytes and the count of files is what is checked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from detect.dicomweb.fetch import fetch_instances
from detect.dicomweb.server import DicomwebServer, SeriesRef
from detect.download.check import count_all, mismatch_line, series_dir
from detect.download.config import DownloadConfig
from detect.download.fetch import FetchProgress
from detect.download.index import RefusedSeries, Selection, SeriesEntry
from detect.download.manifest import manifest_data, write_manifest
from detect.download.names import UnsafeValue, check_patient_id, series_folder
from detect.download.run import DownloadResult
from detect.errors import DicomwebError, DownloadError


@dataclass(frozen=True)
class ServerSelection:
    """A selection on a server, with what fetching it needs: each series' QIDO-RS row
    and its SOPInstanceUIDs, by SeriesInstanceUID."""

    selection: Selection
    refs: dict[str, tuple[SeriesRef, tuple[str, ...]]]


def select_on_server(config: DownloadConfig, server: DicomwebServer) -> ServerSelection:
    """The series of ``config.studies`` and of ``config.patients``' studies whose
    modality is in ``config.modalities``.

    Raises:
        DicomwebError: a request fails, or a study or patient the server does not know.
        DownloadError: nothing of the chosen modalities.
    """
    name = server.config.name
    studies = list(config.studies)
    for patient in config.patients:
        found = server.patient_studies(patient)
        if not found:
            raise DicomwebError(f"{name} has no study of patient {patient!r}; check the ID")
        studies += found
    entries: list[SeriesEntry] = []
    refused: list[RefusedSeries] = []
    refs: dict[str, tuple[SeriesRef, tuple[str, ...]]] = {}
    for study in dict.fromkeys(studies):
        listed = server.study_series(study)
        if not listed:
            raise DicomwebError(f"{name} has no series in study {study}; check the UID")
        for ref in listed:
            if ref.modality not in config.modalities or ref.series_uid in refs:
                continue
            try:
                patient = check_patient_id(ref.patient_id)
                folder = series_folder(config.collection, patient, ref.study_uid,
                                       ref.series_uid)
            except UnsafeValue as exc:
                refused.append(RefusedSeries(ref.series_uid, ref.patient_id, str(exc)))
                continue
            uids = tuple(server.instance_uids(ref))
            if not uids:
                refused.append(RefusedSeries(ref.series_uid, patient, "no instances listed"))
                continue
            refs[ref.series_uid] = (ref, uids)
            entries.append(SeriesEntry(patient, ref.study_uid, ref.series_uid, ref.modality,
                                       len(uids), 0, f"{name}/{ref.path}", folder))
    if not entries and not refused:
        raise DownloadError(f"nothing selected: no series of modality "
                            f"{','.join(config.modalities)} in the chosen studies on {name}")
    entries.sort(key=lambda e: (e.patient_id, e.study_uid, e.modality, e.series_uid))
    return ServerSelection(Selection(config.collection, f"DICOMweb {name}", tuple(entries),
                                     tuple(refused)), refs)


def download_from_server(
    config: DownloadConfig,
    chosen: ServerSelection,
    server: DicomwebServer,
    *,
    progress: Callable[[FetchProgress], None] | None = None,
) -> DownloadResult:
    """Fetch what the series folders lack, then count (see the module docstring).

    Raises:
        DicomwebError: a request fails (the files fetched before stay; a re-run resumes).
        DownloadError: a series folder would leave OUT, a count that differs from the
            manifest, or series that were refused.
    """
    start = time.perf_counter()
    out, selection = config.out, chosen.selection
    before = count_all(out, selection.series)
    to_fetch = [count for count in before if count.missing]
    manifest = write_manifest(out, manifest_data(config, selection))
    tally = _Tally(sum(c.missing for c in to_fetch), len(to_fetch), progress)
    for count in to_fetch:
        folder = series_dir(out, count.entry)
        folder.mkdir(parents=True, exist_ok=True)
        ref, uids = chosen.refs[count.entry.series_uid]
        missing = [uid for uid in uids if not (folder / f"{uid}.dcm").is_file()]
        try:
            fetch_instances(server, ref, missing, _target(folder), on_file=tally.file)
        except DicomwebError as exc:
            raise DicomwebError(f"{exc}; the files fetched so far are kept: run the same "
                                f"command again to fetch the rest") from None
        tally.series_done(count.entry)
    after = count_all(out, selection.series)
    if not all(count.complete for count in after):
        raise DownloadError(f"{mismatch_line(after)}; the server listed these instances but "
                            f"they are not all here (the manifest is {manifest})")
    if selection.refused:
        first = selection.refused[0]
        raise DownloadError(
            f"downloaded {len(selection.series)} series, but refused {len(selection.refused)} "
            f"with unusable values, e.g. series {first.series_uid!r}: {first.reason} (all "
            f"listed in {manifest})")
    return DownloadResult(manifest=manifest, series=len(selection.series),
                          series_complete_before=len(before) - len(to_fetch),
                          series_fetched=len(to_fetch), instances_copied=tally.files,
                          bytes_copied=tally.bytes, seconds=time.perf_counter() - start)


def _target(folder: Path) -> Callable[[str], Path]:
    def target(uid: str) -> Path:
        return folder / f"{uid}.dcm"  # a checked UID: digits and dots

    return target


class _Tally:
    """Files, bytes and series fetched, reported as :class:`FetchProgress` (the workers
    call :meth:`file` from their threads)."""

    def __init__(self, files_total: int, series_total: int,
                 progress: Callable[[FetchProgress], None] | None) -> None:
        self.files_total, self.series_total, self.progress = files_total, series_total, progress
        self.files = self.bytes = self.series = 0
        self.last = ""
        self._lock = threading.Lock()
        self._report()

    def file(self, uid: str, path: Path) -> None:
        with self._lock:
            self.files += 1
            self.bytes += path.stat().st_size
            self._report()

    def series_done(self, entry: SeriesEntry) -> None:
        with self._lock:
            self.series += 1
            self.last = f"{entry.patient_id} {entry.modality} {entry.series_uid}"
            self._report()

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(FetchProgress(self.files, self.files_total, self.bytes, 0,
                                        self.series, self.series_total, self.last))
