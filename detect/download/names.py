"""Values from the IDC index that become folder names or s5cmd arguments, checked first.

The index is input like any other: a PatientID or UID in it must never place a file
outside the output folder, and a source URL must never point s5cmd anywhere but one
series folder of a bucket. Each check raises ``UnsafeValue`` naming the field, the value
and the pattern it had to match.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

#: DICOM UIDs: digits and dots, at most 64 characters (PS3.5 9.1).
UID_PATTERN = re.compile(r"[0-9]+(?:\.[0-9]+)*")
UID_MAX_CHARS = 64
#: Patient IDs that are safe folder names everywhere: a letter or digit first (so never
#: ``.`` or ``..``), then letters, digits, ``_``, ``.`` and ``-``.
PATIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: IDC collection ids (``lung_pet_ct_dx``).
COLLECTION_PATTERN = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")
#: IDC series URLs: ``s3://<bucket>/<crdc_series_uuid>/*``.
SOURCE_URL_PATTERN = re.compile(
    r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/\*"
)


class UnsafeValue(ValueError):
    """A value from the index (or the command line) that may not become a path part."""


def _check(field: str, value: object, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise UnsafeValue(f"{field} {value!r} is not {what}")
    return value


def check_uid(field: str, value: object) -> str:
    """``value`` if it is a DICOM UID (digits and dots, <= 64 chars).

    Raises:
        UnsafeValue: anything else (``..``, slashes, letters, empty, too long).
    """
    uid = _check(field, value, UID_PATTERN, "a DICOM UID (digits and dots)")
    if len(uid) > UID_MAX_CHARS:
        raise UnsafeValue(f"{field} {uid!r} is longer than {UID_MAX_CHARS} characters")
    return uid


def check_patient_id(value: object) -> str:
    """``value`` if it is a safe folder name (see :data:`PATIENT_ID_PATTERN`).

    Raises:
        UnsafeValue: otherwise.
    """
    return _check(
        "PatientID", value, PATIENT_ID_PATTERN,
        "a safe folder name (letters, digits, '_', '.', '-'; a letter or digit first)",
    )


def check_collection(value: object) -> str:
    """``value`` if it looks like an IDC collection id (lowercase, digits, ``_``).

    Raises:
        UnsafeValue: otherwise.
    """
    return _check(
        "collection", value, COLLECTION_PATTERN, "an IDC collection id like lung_pet_ct_dx"
    )


def check_source_url(value: object) -> str:
    """``value`` if it is an IDC series URL ``s3://<bucket>/<uuid>/*``.

    Raises:
        UnsafeValue: otherwise.
    """
    return _check(
        "series_aws_url", value, SOURCE_URL_PATTERN, "an IDC series URL s3://<bucket>/<uuid>/*"
    )


def series_folder(collection: str, patient_id: str, study_uid: str, series_uid: str) -> str:
    """``<collection>/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>``, relative to OUT.

    Every part is checked here again, so no caller can build a path from unchecked values.

    Raises:
        UnsafeValue: a part is not safe.
    """
    parts = (
        check_collection(collection),
        check_patient_id(patient_id),
        check_uid("StudyInstanceUID", study_uid),
        check_uid("SeriesInstanceUID", series_uid),
    )
    return str(PurePosixPath(*parts))
