"""One DICOMweb server, through dicomweb-client: find series (QIDO-RS), fetch instances
(WADO-RS), store SRs (STOW-RS).

Every request goes through :class:`detect.dicomweb.session.GuardedSession` (timeouts,
retries on 429/503 only, size and format checks), and every failure becomes one
:class:`detect.errors.DicomwebError` line naming the server and the request (method and
path below the service root), never a credential. Values the server returns are input
like any file: a UID must be a UID before it becomes part of a URL, a series count must
be a number; a row that is not is reported, not used.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pydicom
import requests
from pydicom.dataset import Dataset

from detect.dicomweb.auth import Credentials, load_credentials
from detect.dicomweb.config import (
    CONNECT_TIMEOUT_S,
    UID_MAX_CHARS,
    UID_PATTERN,
    ServerConfig,
)
from detect.dicomweb.session import GuardedSession, ResponseFault
from detect.errors import DicomwebError, EnvironmentProblem

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'detect[dicomweb]'"
#: QIDO-RS results are asked for in pages of this many.
PAGE = 1000
#: More results than this from one query is not an answer detect can use.
MAX_RESULTS = 100_000
#: A DICOM answer may hold the pixels the limit allows at 2 bytes a sample, plus headers.
HEADER_ALLOWANCE_BYTES = 16 * 1024 * 1024
_TAGS = {"StudyInstanceUID": "0020000D", "SeriesInstanceUID": "0020000E",
         "SOPInstanceUID": "00080018", "PatientID": "00100020", "Modality": "00080060",
         "SeriesDescription": "0008103E", "NumberOfSeriesRelatedInstances": "00201209",
         "SOPClassUID": "00080016"}
_HINTS = {
    401: "the credentials{creds} were refused",
    403: "the credentials{creds} may not do this",
    404: "not there: check the UID and the service root URL",
    429: "still too many requests after {retries} retries; try again later",
    503: "still unavailable after {retries} retries; try again later",
}
_OBJECT_AT = re.compile(r"<[^<>]* object at 0x[0-9a-f]+>:?\s*")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
_INCOMPLETE = re.compile(r"IncompleteRead\(\d+ bytes read, \d+ more expected\)")


@dataclass(frozen=True)
class SeriesRef:
    """A series as QIDO-RS lists it (every UID checked)."""

    study_uid: str
    series_uid: str
    patient_id: str
    modality: str
    description: str
    instances: int | None

    @property
    def path(self) -> str:
        """Its WADO-RS path below the service root."""
        return f"studies/{self.study_uid}/series/{self.series_uid}"


def is_uid(value: str) -> bool:
    return UID_PATTERN.fullmatch(value) is not None and len(value) <= UID_MAX_CHARS


def value_of(item: Mapping[str, Any], keyword: str) -> str:
    """The first value of ``keyword`` in a DICOM JSON item as text ('' when absent)."""
    element = item.get(_TAGS[keyword]) if isinstance(item, Mapping) else None
    values = element.get("Value") if isinstance(element, Mapping) else None
    if not isinstance(values, list) or not values:
        return ""
    first = values[0]
    if isinstance(first, Mapping):  # a person name
        first = first.get("Alphabetic", "")
    return str(first) if isinstance(first, (str, int, float)) else ""


def max_dicom_bytes(max_pixels: int) -> int:
    """The largest WADO-RS answer for one instance: 2 bytes per allowed pixel sample plus
    :data:`HEADER_ALLOWANCE_BYTES` of header (a larger one is never read)."""
    return 2 * max_pixels + HEADER_ALLOWANCE_BYTES


class DicomwebServer:
    """A DICOMweb service root with detect's limits (see the module docstring)."""

    def __init__(self, config: ServerConfig, credentials: Credentials, *,
                 dicom_max_bytes: int) -> None:
        self.config = config
        self.credentials = credentials
        self.session = GuardedSession(timeout=(CONNECT_TIMEOUT_S, config.timeout_s),
                                      retries=config.retries, dicom_max_bytes=dicom_max_bytes)
        self.session.auth = credentials.auth()
        self.session.verify = str(config.ca_bundle) if config.ca_bundle else True
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(10, config.workers + 2))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        try:
            from dicomweb_client.api import DICOMwebClient
        except ImportError:
            raise EnvironmentProblem(f"DICOMweb needs dicomweb-client, which is not "
                                     f"installed: {INSTALL_HINT}") from None
        try:
            self.client = DICOMwebClient(config.url, session=self.session)
        except ValueError as exc:
            raise DicomwebError(f"{config.name} is not a DICOMweb URL dicomweb-client "
                                f"accepts ({exc})") from None
        self.client.set_http_retry_params(retry=False)  # GuardedSession retries 429/503

    def close(self) -> None:
        self.session.close()

    @contextmanager
    def request(self, what: str) -> Iterator[None]:
        """Turn any failure of the request ``what`` (``GET studies?...``) into one
        :class:`DicomwebError` line."""
        try:
            yield
        except ResponseFault as exc:
            raise DicomwebError(f"{self.config.name}: {what}: {exc.detail} ({exc.kind}); "
                                f"nothing was used from this answer") from None
        except requests.HTTPError as exc:
            raise DicomwebError(self._status_line(what, exc.response)) from None
        except requests.exceptions.SSLError as exc:
            raise DicomwebError(
                f"cannot reach {self.config.name}: TLS failed for {what} ({_reason(exc)}); "
                f"pass --ca-bundle with the authority that signed the server's certificate"
            ) from None
        except requests.exceptions.ChunkedEncodingError as exc:
            raise DicomwebError(f"{self.config.name}: {what}: the body was cut short "
                                f"({_reason(exc)}) (truncated); nothing was used from this "
                                f"answer") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DicomwebError(f"cannot reach {self.config.name}: {what}: "
                                f"{self._connection_reason(exc)}") from None
        except (requests.RequestException, ValueError, KeyError, TypeError, EOFError,
                pydicom.errors.InvalidDicomError) as exc:
            detail = _OBJECT_AT.sub("", str(exc))[:200] or type(exc).__name__
            raise DicomwebError(f"{self.config.name}: {what}: the answer cannot be read "
                                f"({detail})") from None

    def _connection_reason(self, exc: BaseException) -> str:
        text = str(exc)
        if isinstance(exc, requests.ConnectTimeout):
            return f"no connection within {CONNECT_TIMEOUT_S:g} s"
        if isinstance(exc, requests.ReadTimeout) or "Read timed out" in text:
            return (f"no answer within {self.session.timeout[1]:g} s (--timeout; a slow server "
                    f"may need more)")
        return _reason(exc)

    def _status_line(self, what: str, response: requests.Response | None) -> str:
        status = response.status_code if response is not None else 0
        reason = (response.reason or "") if response is not None else ""
        creds = f" from {self.credentials.source}"
        if self.credentials.kind == "none":
            creds = (" (none given: set DETECT_DICOMWEB_USER and DETECT_DICOMWEB_PASSWORD, or "
                     "DETECT_DICOMWEB_TOKEN, or pass --auth-file)")
        hint = _HINTS.get(status, "a server error" if status >= 500 else "refused")
        if status == 401 and self.credentials.kind == "none":
            hint = "the server wants credentials{creds}"
        hint = hint.format(creds=creds, retries=self.config.retries)
        return f"{self.config.name} answered {status} {reason} to {what}: {hint}"

    def check(self) -> None:
        """One quick request (``studies?limit=1``, a few seconds at most): the server is
        there, speaks QIDO-RS and accepts the credentials.

        Raises:
            DicomwebError: it does not.
        """
        saved = self.session.timeout
        self.session.timeout = (CONNECT_TIMEOUT_S, min(CONNECT_TIMEOUT_S, saved[1]))
        try:
            with self.request("GET studies?limit=1"):
                self.client.search_for_studies(limit=1)
        finally:
            self.session.timeout = saved

    def _search(self, what: str, search: Any, **kwargs: Any) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        while True:
            with self.request(what):
                page = search(limit=PAGE, offset=len(results), **kwargs)
            if not isinstance(page, list):
                raise DicomwebError(f"{self.config.name}: {what}: the answer is not a list")
            results += [item for item in page if isinstance(item, dict)]
            if len(page) < PAGE:
                return results
            if len(results) >= MAX_RESULTS:
                raise DicomwebError(f"{self.config.name}: {what}: more than {MAX_RESULTS} "
                                    f"results; choose fewer studies")

    def study_series(self, study_uid: str) -> list[SeriesRef]:
        """Every series of a study (any modality).

        Raises:
            DicomwebError: the request fails.
        """
        rows = self._search(f"GET studies/{study_uid}/series", self.client.search_for_series,
                            study_instance_uid=study_uid)
        return self._series_refs(rows, study_uid)

    def series_by_uid(self, series_uid: str) -> list[SeriesRef]:
        """The series with this SeriesInstanceUID (normally one)."""
        rows = self._search(f"GET series?SeriesInstanceUID={series_uid}",
                            self.client.search_for_series,
                            search_filters={"SeriesInstanceUID": series_uid})
        return [ref for ref in self._series_refs(rows, None) if ref.series_uid == series_uid]

    def patient_studies(self, patient_id: str) -> list[str]:
        """The StudyInstanceUIDs of a patient (exact PatientID match; QIDO wildcards in
        the ID are not given a chance to match other patients)."""
        rows = self._search(f"GET studies?PatientID={patient_id}",
                            self.client.search_for_studies,
                            search_filters={"PatientID": patient_id})
        found = [value_of(r, "StudyInstanceUID") for r in rows
                 if value_of(r, "PatientID") == patient_id]
        return list(dict.fromkeys(uid for uid in found if is_uid(uid)))

    def _series_refs(self, rows: Sequence[Mapping[str, Any]], study_uid: str | None
                     ) -> list[SeriesRef]:
        refs = []
        for row in rows:
            study = value_of(row, "StudyInstanceUID") or (study_uid or "")
            series = value_of(row, "SeriesInstanceUID")
            if not (is_uid(study) and is_uid(series)) or (study_uid and study != study_uid):
                log.warning("%s: a QIDO-RS row with unusable UIDs (%r, %r) was ignored",
                            self.config.name, study[:70], series[:70])
                continue
            count = value_of(row, "NumberOfSeriesRelatedInstances")
            refs.append(SeriesRef(study, series, value_of(row, "PatientID"),
                                  value_of(row, "Modality").upper(),
                                  value_of(row, "SeriesDescription"),
                                  int(count) if count.isdigit() else None))
        return refs

    def instance_uids(self, ref: SeriesRef) -> list[str]:
        """The SOPInstanceUIDs of a series, each checked to be a UID.

        Raises:
            DicomwebError: the request fails, or a listed UID is not a UID.
        """
        what = f"GET {ref.path}/instances"
        rows = self._search(what, self.client.search_for_instances,
                            study_instance_uid=ref.study_uid,
                            series_instance_uid=ref.series_uid)
        uids = [value_of(row, "SOPInstanceUID") for row in rows]
        bad = [uid for uid in uids if not is_uid(uid)]
        if bad:
            raise DicomwebError(f"{self.config.name}: {what}: lists {bad[0][:70]!r}, which is "
                                f"not a SOPInstanceUID")
        return list(dict.fromkeys(uids))

    def instance(self, ref: SeriesRef, sop_uid: str) -> Dataset:
        """One instance, as the server stores it (any transfer syntax but Deflated).

        Raises:
            DicomwebError: the request fails or the answer is not one DICOM instance.
        """
        with self.request(f"GET {ref.path}/instances/{sop_uid}"):
            return self.client.retrieve_instance(ref.study_uid, ref.series_uid, sop_uid)

    def has_instance(self, study_uid: str, sop_uid: str) -> bool:
        """Whether the study holds an instance with this SOPInstanceUID (QIDO-RS)."""
        what = f"GET studies/{study_uid}/instances?SOPInstanceUID={sop_uid}"
        with self.request(what):
            rows = self.client.search_for_instances(
                study_instance_uid=study_uid, search_filters={"SOPInstanceUID": sop_uid})
        return any(value_of(row, "SOPInstanceUID") == sop_uid for row in rows)

    def store(self, study_uid: str, dataset: Dataset) -> None:
        """STOW-RS one instance into its study.

        Raises:
            DicomwebError: the request fails or the server lists it as failed.
        """
        what = f"POST studies/{study_uid}"
        with self.request(what):
            answer = self.client.store_instances([dataset], study_instance_uid=study_uid)
        failed = getattr(answer, "FailedSOPSequence", None) or []
        if failed:
            reason = getattr(failed[0], "FailureReason", "?")
            raise DicomwebError(f"{self.config.name}: {what}: the server refused the SR "
                                f"(failure reason {reason})")


def connect(config: ServerConfig, *, max_pixels: int) -> DicomwebServer:
    """The server with the credentials of the environment or ``--auth-file``, checked by
    one quick request (:meth:`DicomwebServer.check`).

    Raises:
        ConfigError: the credentials cannot be loaded.
        DicomwebError: the server cannot be reached or refuses the credentials.
        EnvironmentProblem: dicomweb-client is not installed.
    """
    server = DicomwebServer(config, load_credentials(config.auth_file),
                            dicom_max_bytes=max_dicom_bytes(max_pixels))
    try:
        server.check()
    except BaseException:
        server.close()
        raise
    return server


def _reason(exc: BaseException) -> str:
    """The innermost cause of a connection failure, without object reprs: the operating
    system's words where there are some (``Connection refused``, ``Name or service not
    known``)."""
    text = str(exc)
    errno = _ERRNO.findall(text)
    if errno:
        return errno[-1].strip()
    incomplete = _INCOMPLETE.search(text)
    if incomplete:
        return incomplete.group(0)
    text = _OBJECT_AT.sub("", text)
    return text.strip("() '\"")[:200] or type(exc).__name__
