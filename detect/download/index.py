"""Select series from the IDC index, offline.

idc-index-data ships IDC's index as a parquet file inside its wheel; it is read here with
DuckDB and parameterised SQL (values from the command line never become SQL text). We do
not construct ``idc_index.IDCClient``: it loads the whole 1M-row index into pandas (about
30 s and 3 GB here, against about 1 s and 150 MB for this query) and configures the root
logger when imported.

Rows: CT and PT series of the collection itself (``analysis_result_id`` empty), and, for
SR, only the collection's box series (``lung_pet_ct_dx_annotations``: one Comprehensive
3D SR per annotated CT series, in the study of its CT); the AI segmentations IDC also
lists for the collection are never selected. Every selected row is checked before it can
become a path (:mod:`detect.download.names`); a row that fails is refused and reported.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detect.download.config import DownloadConfig
from detect.download.names import (
    UnsafeValue,
    check_patient_id,
    check_source_url,
    check_uid,
    series_folder,
)
from detect.errors import DownloadError, EnvironmentProblem
from detect.histology import patient_letter

INSTALL_HINT = "pip install 'detect[idc]'"
_COLUMNS = (
    "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
    "instanceCount", "series_size_MB", "series_aws_url",
)
_QUERY = f"""
SELECT {", ".join(_COLUMNS)}
FROM read_parquet(?)
WHERE collection_id = ?
  AND ((Modality IN ('CT', 'PT') AND analysis_result_id IS NULL)
       OR (Modality = 'SR' AND analysis_result_id = ?))
"""


@dataclass(frozen=True)
class SeriesEntry:
    """One series to download; every field checked (see :func:`entry_from_row`)."""

    patient_id: str
    study_uid: str
    series_uid: str
    modality: str
    instances: int
    size_bytes: int
    source_url: str
    folder: str  # relative to OUT, posix

    @property
    def letter(self) -> str | None:
        """The histology letter in the patient ID, or None when it has none."""
        try:
            return patient_letter(self.patient_id)
        except ValueError:
            return None


@dataclass(frozen=True)
class RefusedSeries:
    """A selected index row that failed a check: never downloaded, always reported."""

    series_uid: str
    patient_id: str
    reason: str


@dataclass(frozen=True)
class Selection:
    """The series a config selects, and the rows refused on the way."""

    collection: str
    index_version: str
    series: tuple[SeriesEntry, ...]
    refused: tuple[RefusedSeries, ...] = ()

    @property
    def instances(self) -> int:
        return sum(entry.instances for entry in self.series)

    @property
    def size_bytes(self) -> int:
        return sum(entry.size_bytes for entry in self.series)

    def by_modality(self) -> dict[str, dict[str, int]]:
        """Modality → series, instances, size_bytes and patients."""
        table: dict[str, dict[str, int]] = {}
        for modality in sorted({entry.modality for entry in self.series}):
            entries = [entry for entry in self.series if entry.modality == modality]
            table[modality] = {
                "series": len(entries),
                "instances": sum(entry.instances for entry in entries),
                "size_bytes": sum(entry.size_bytes for entry in entries),
                "patients": len({entry.patient_id for entry in entries}),
            }
        return table

    def patients_by_letter(self) -> dict[str, int]:
        """Histology letter (``?`` when the ID has none) → number of patients."""
        letters = {entry.patient_id: entry.letter or "?" for entry in self.series}
        return dict(sorted(Counter(letters.values()).items()))

    @property
    def patients(self) -> int:
        return len({entry.patient_id for entry in self.series})


def entry_from_row(row: Mapping[str, Any], collection: str) -> SeriesEntry:
    """A checked :class:`SeriesEntry` from one index row.

    Raises:
        UnsafeValue: a value that may not become a path or an s5cmd argument, or counts
            that are not numbers of the right kind.
    """
    patient_id = check_patient_id(row["PatientID"])
    study_uid = check_uid("StudyInstanceUID", row["StudyInstanceUID"])
    series_uid = check_uid("SeriesInstanceUID", row["SeriesInstanceUID"])
    instances, size_mb = row["instanceCount"], row["series_size_MB"]
    if not isinstance(instances, int) or isinstance(instances, bool) or instances < 1:
        raise UnsafeValue(f"instanceCount {instances!r} is not a whole number >= 1")
    if not isinstance(size_mb, (int, float)) or not math.isfinite(size_mb) or size_mb < 0:
        raise UnsafeValue(f"series_size_MB {size_mb!r} is not a size >= 0")
    return SeriesEntry(
        patient_id=patient_id,
        study_uid=study_uid,
        series_uid=series_uid,
        modality=str(row["Modality"]),
        instances=instances,
        size_bytes=round(size_mb * 1_000_000),  # IDC's MB are 10^6 bytes, to the byte
        source_url=check_source_url(row["series_aws_url"]),
        folder=series_folder(collection, patient_id, study_uid, series_uid),
    )


def index_location(config: DownloadConfig) -> tuple[Path, str]:
    """The index parquet to read and its version label.

    Raises:
        EnvironmentProblem: idc-index-data is not installed (and no index was given).
    """
    if config.index is not None:
        return config.index, f"file {config.index.name}"
    try:
        import idc_index_data
    except ImportError:
        raise EnvironmentProblem(
            f"detect download needs the IDC index (idc-index) and s5cmd: {INSTALL_HINT}"
        ) from None
    path = idc_index_data.IDC_INDEX_PARQUET_FILEPATH
    if path is None:
        raise EnvironmentProblem(f"idc-index-data has no index file; reinstall: {INSTALL_HINT}")
    return Path(path), f"idc-index-data {idc_index_data.__version__}"


def query_rows(path: Path, collection: str, box_result: str | None) -> list[dict[str, Any]]:
    """The collection's CT, PT and box-SR rows of the index parquet at ``path``.

    Raises:
        EnvironmentProblem: DuckDB is not installed.
        DownloadError: the file is not an IDC index DuckDB can read.
    """
    try:
        import duckdb
    except ImportError:
        raise EnvironmentProblem(
            f"detect download needs the IDC index (idc-index) and s5cmd: {INSTALL_HINT}"
        ) from None
    try:
        with duckdb.connect() as connection:
            cursor = connection.execute(_QUERY, [str(path), collection, box_result or ""])
            rows = cursor.fetchall()
    except duckdb.Error as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DownloadError(
            f"cannot read the IDC index {path}: {first_line}; expected idc-index-data's "
            f"parquet with columns {', '.join(_COLUMNS)}"
        ) from None
    return [dict(zip(_COLUMNS, row)) for row in rows]


def select_series(config: DownloadConfig) -> Selection:
    """The series ``config`` selects from the offline IDC index, sorted by patient,
    study, modality and series.

    Raises:
        EnvironmentProblem: the IDC index is not installed.
        DownloadError: unknown collection or patients, or an empty selection.
    """
    path, version = index_location(config)
    rows = query_rows(path, config.collection, config.box_result)
    if not rows:
        raise DownloadError(
            f"collection {config.collection!r} has no CT, PT or SR series in the IDC index "
            f"({version}); IDC's id of Lung-PET-CT-Dx is lung_pet_ct_dx"
        )
    _check_patients_known(config, rows, version)
    series: list[SeriesEntry] = []
    refused: list[RefusedSeries] = []
    seen: set[str] = set()
    for row in rows:
        if not _wanted(config, row):
            continue
        try:
            entry = entry_from_row(row, config.collection)
            if entry.series_uid in seen:
                raise UnsafeValue(f"SeriesInstanceUID {entry.series_uid!r} is listed twice")
        except UnsafeValue as exc:
            refused.append(RefusedSeries(str(row["SeriesInstanceUID"]),
                                         str(row["PatientID"]), str(exc)))
            continue
        seen.add(entry.series_uid)
        series.append(entry)
    if not series and not refused:
        raise DownloadError(f"nothing selected: {_describe(config)} has no series in the "
                            f"IDC index ({version})")
    series.sort(key=lambda e: (e.patient_id, e.study_uid, e.modality, e.series_uid))
    return Selection(config.collection, version, tuple(series), tuple(refused))


def _wanted(config: DownloadConfig, row: Mapping[str, Any]) -> bool:
    if row["Modality"] not in config.modalities:
        return False
    patient = row["PatientID"]
    if config.patients:
        return patient in config.patients
    if config.letters:
        try:
            return patient_letter(str(patient)) in config.letters
        except ValueError:
            return False
    return True


def _check_patients_known(
    config: DownloadConfig, rows: Sequence[Mapping[str, Any]], version: str
) -> None:
    known = {row["PatientID"] for row in rows}
    unknown = [patient for patient in config.patients if patient not in known]
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        shown = ", ".join(unknown[:5]) + more
        raise DownloadError(
            f"not in collection {config.collection} of the IDC index ({version}): {shown}; "
            f"patient IDs look like Lung_Dx-A0002"
        )


def _describe(config: DownloadConfig) -> str:
    what = f"collection {config.collection}, modality {','.join(config.modalities)}"
    if config.patients:
        what += f", patients {','.join(config.patients)}"
    if config.letters:
        what += f", letters {','.join(config.letters)}"
    return what
