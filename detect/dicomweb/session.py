"""The HTTP session every DICOMweb request goes through: timeouts, bounded retries, and
checks of each answer before dicomweb-client reads it.

dicomweb-client does the DICOMweb work (URLs, QIDO parameters, multipart encoding and
decoding); this session, handed to it, decides what an answer may be:

- every request has a timeout (``(connect, read)`` seconds); a 429 or 503 answer is
  retried ``retries`` times after 0.5, 1, 2... s (or the server's ``Retry-After``, at most
  :data:`MAX_WAIT_S`); nothing else is retried (the client's own retrying is switched
  off), so a refused connection fails at once;
- a 2xx answer must have the media type its request asked for (``multipart/related`` or
  ``application/dicom`` for WADO-RS, DICOM JSON for QIDO-RS) — else
  :class:`ResponseFault` ``wrong-content-type`` before a byte of the body is read;
- a body is read through :class:`_GuardedBody`: at most ``max_bytes`` after decoding
  (a JSON answer :data:`JSON_MAX_BYTES`, a DICOM answer the caller's limit), never far
  more than the declared Content-Length (a compressed body that inflates over
  :data:`INFLATE_RATIO` times is a bomb), a multipart body must end with its closing
  boundary (a truncated body, or one longer than its Content-Length, does not), and a
  DICOM part in the Deflated transfer syntax is refused (pydicom, inside the client,
  would inflate it whole before any size check).

A fault is a :class:`ResponseFault` with a kind and a detail; :mod:`detect.dicomweb.server`
turns it into one line naming the server and the request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import requests

from detect import __version__

log = logging.getLogger(__name__)

JSON_MAX_BYTES = 64 * 1024 * 1024
INFLATE_RATIO = 100
MAX_WAIT_S = 30.0
RETRY_STATUS = (429, 503)
#: Transfer syntaxes whose datasets pydicom inflates whole on reading.
DEFLATED = (b"1.2.840.10008.1.2.1.99", b"1.2.840.10008.1.2.4.95")
_SNIFF_BYTES = 64 * 1024


class ResponseFault(Exception):
    """An answer that may not be used: ``kind`` (``wrong-content-type``, ``too-large``,
    ``truncated``, ``deflated``) and what was seen."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class GuardedSession(requests.Session):
    """A ``requests.Session`` with detect's limits (see the module docstring)."""

    def __init__(self, *, timeout: tuple[float, float], retries: int,
                 dicom_max_bytes: int) -> None:
        super().__init__()
        self.headers["User-Agent"] = f"detect/{__version__}"
        self.timeout = timeout
        self.retries = retries
        self.dicom_max_bytes = dicom_max_bytes

    def request(self, method: str | bytes, url: str | bytes,
                *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["timeout"] = self.timeout
        kwargs["stream"] = True  # the body is read later, through _GuardedBody
        accept = str((kwargs.get("headers") or {}).get("Accept", ""))
        for attempt in range(self.retries + 1):
            response = super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]
            if response.status_code not in RETRY_STATUS or attempt == self.retries:
                break
            wait = _wait_s(response, attempt)
            log.info("%s answered %d; retrying in %.1f s", _path(url), response.status_code,
                     wait)
            response.close()
            pause(wait)
        if 200 <= response.status_code < 300:
            self._guard(response, accept)
        return response

    def _guard(self, response: requests.Response, accept: str) -> None:
        media, boundary = _media_type(response.headers.get("Content-Type", ""))
        declared = _declared_length(response)
        if "multipart/related" in accept:
            if media not in ("multipart/related", "application/dicom"):
                response.close()
                raise ResponseFault("wrong-content-type", f"Content-Type {media or 'none'!r}"
                                    f" where multipart/related DICOM was asked for")
            cap = self.dicom_max_bytes
        elif "json" in accept:
            if declared != 0 and media not in ("application/dicom+json", "application/json"):
                response.close()
                raise ResponseFault("wrong-content-type", f"Content-Type {media or 'none'!r}"
                                    f" where DICOM JSON was asked for")
            cap = JSON_MAX_BYTES
        else:
            cap = JSON_MAX_BYTES
        if declared is not None and declared > cap:
            response.close()
            raise ResponseFault("too-large", f"declares {declared} bytes, more than the "
                                f"{cap} allowed")
        closing = b"--" + boundary + b"--" if media == "multipart/related" and boundary else None
        sniff = media in ("multipart/related", "application/dicom")
        response.raw = _GuardedBody(response.raw, cap=cap, declared=declared, closing=closing,
                                    sniff=sniff)


class _GuardedBody:
    """Wraps urllib3's response body: counts decoded bytes and checks them while requests
    reads (``stream``), everything else is the wrapped object's."""

    def __init__(self, raw: Any, *, cap: int, declared: int | None, closing: bytes | None,
                 sniff: bool) -> None:
        self._raw = raw
        self._cap = cap
        if declared:
            self._cap = min(cap, declared * INFLATE_RATIO + 1024 * 1024)
        self._declared = declared
        self._closing = closing
        self._sniff = sniff
        self._seen = 0
        self._head = b""
        self._tail = b""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def stream(self, amt: int = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
        for chunk in self._raw.stream(amt, decode_content=decode_content):
            self._check(chunk)
            yield chunk
        self._finish()

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        chunk: bytes = self._raw.read(amt, *args, **kwargs)
        self._check(chunk)
        if not chunk or amt is None:
            self._finish()
        return chunk

    def _check(self, chunk: bytes) -> None:
        self._seen += len(chunk)
        if self._seen > self._cap:
            declared = f" (declared {self._declared})" if self._declared else ""
            raise ResponseFault("too-large", f"the body passed {self._cap} bytes{declared}; "
                                f"stopped reading")
        if self._sniff and len(self._head) < _SNIFF_BYTES:
            self._head = (self._head + chunk)[:_SNIFF_BYTES]
            if any(uid in self._head for uid in DEFLATED):
                raise ResponseFault("deflated", "a DICOM part in the Deflated transfer syntax "
                                    "(inflated whole on reading, so refused)")
        if self._closing is not None:
            self._tail = (self._tail + chunk)[-(len(self._closing) + 64):]

    def _finish(self) -> None:
        if self._closing is not None and self._closing not in self._tail:
            declared = f" its Content-Length {self._declared}" if self._declared else ""
            raise ResponseFault(
                "truncated", f"the multipart body ended after {self._seen} bytes without its "
                f"closing boundary (cut short, or longer than{declared or ' it declared'})"
            )


def pause(seconds: float) -> None:
    """The back-off wait (a function of its own so tests can skip it)."""
    time.sleep(seconds)


def _wait_s(response: requests.Response, attempt: int) -> float:
    after = response.headers.get("Retry-After", "").strip()
    if after.isdigit():
        return min(float(after), MAX_WAIT_S)
    return min(0.5 * 2**attempt, MAX_WAIT_S)


def _media_type(header: str) -> tuple[str, bytes]:
    media, *params = (part.strip() for part in header.split(";"))
    boundary = b""
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "boundary":
            boundary = value.strip().strip('"').encode("latin-1", "replace")
    return media.lower(), boundary


def _declared_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isdigit() else None


def _path(url: str | bytes) -> str:
    text = url.decode("latin-1") if isinstance(url, bytes) else url
    return text.split("?", 1)[0]
