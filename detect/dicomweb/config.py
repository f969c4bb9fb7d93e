"""Where a DICOMweb server is and how detect talks to it, checked on construction.

The service root is an ``http(s)`` URL such as ``https://pacs.example.org/dicom-web``;
QIDO-RS, WADO-RS and STOW-RS paths are appended to it. Credentials never come from the
command line, so a URL carrying ``user:password@`` is refused (and never echoed whole):
they come from the environment or ``--auth-file`` (:mod:`detect.dicomweb.auth`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from detect.errors import ConfigError

#: DICOM UIDs: digits and dots, at most 64 characters (PS3.5 9.1).
UID_PATTERN = re.compile(r"[0-9]+(?:\.[0-9]+)*")
UID_MAX_CHARS = 64
#: Seconds to open a connection; the endpoint check uses it for its whole request.
CONNECT_TIMEOUT_S = 5.0
#: Seconds a read may wait for the next bytes of a response (not the whole transfer).
READ_TIMEOUT_S = 30.0


def is_url(text: str) -> bool:
    """Whether a SOURCE argument names a DICOMweb server rather than a folder."""
    return text.lower().startswith(("http://", "https://"))


def redacted(url: str) -> str:
    """``url`` without any ``user:password@`` part (for messages)."""
    parts = urlsplit(url.strip())
    if parts.username is None and parts.password is None:
        return url.strip()
    host = parts.hostname or ""
    port = f":{parts.port}" if _port(parts) else ""
    return parts._replace(netloc=f"{host}{port}").geturl()


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def check_uid(option: str, value: str) -> str:
    """``value`` if it is a DICOM UID.

    Raises:
        ConfigError: anything else (letters, slashes, ``..``, empty, over 64 characters).
    """
    text = value.strip()
    if UID_PATTERN.fullmatch(text) is None or len(text) > UID_MAX_CHARS:
        raise ConfigError(f"{option} takes a DICOM UID (digits and dots, at most "
                          f"{UID_MAX_CHARS} characters), got {value[:80]!r}")
    return text


@dataclass(frozen=True)
class ServerConfig:
    """A DICOMweb service root and the rules of every request made to it.

    ``timeout_s``: seconds a read may wait for data; ``retries``: extra attempts after a
    429 or 503 answer (with back-off); ``workers``: instances fetched at once;
    ``ca_bundle``: a PEM file of the certificate authorities to trust (TLS is always
    verified); ``auth_file``: a mode-600 file of credentials.
    """

    url: str
    auth_file: Path | None = None
    ca_bundle: Path | None = None
    timeout_s: float = READ_TIMEOUT_S
    retries: int = 3
    workers: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", self._checked_url())
        if not 0.1 <= self.timeout_s <= 3600:
            raise ConfigError(f"--timeout must be between 0.1 and 3600 seconds, got "
                              f"{self.timeout_s}")
        if not 0 <= self.retries <= 10:
            raise ConfigError(f"retries must be between 0 and 10, got {self.retries}")
        if not 1 <= self.workers <= 32:
            raise ConfigError(f"DICOMweb workers must be between 1 and 32, got {self.workers}")
        if self.ca_bundle is not None and not self.ca_bundle.is_file():
            raise ConfigError(f"--ca-bundle {self.ca_bundle} is not a file; pass a PEM file "
                              f"of the certificate authorities to trust")

    def _checked_url(self) -> str:
        text = self.url.strip()
        parts = urlsplit(text)
        if parts.username is not None or parts.password is not None:
            raise ConfigError(
                f"the DICOMweb URL {redacted(text)} carries credentials; they are never "
                f"taken from the command line: set DETECT_DICOMWEB_USER and "
                f"DETECT_DICOMWEB_PASSWORD (or DETECT_DICOMWEB_TOKEN), or pass --auth-file"
            )
        if (parts.scheme not in ("http", "https") or not parts.hostname
                or any(ch.isspace() for ch in text) or parts.query or parts.fragment
                or (_port(parts) is None and ":" in parts.netloc.rsplit("]", 1)[-1])):
            raise ConfigError(
                f"a DICOMweb URL is the service root, like https://pacs.example.org/dicom-web "
                f"or http://127.0.0.1:8042/dicom-web (no query), got {text[:120]!r}"
            )
        return text.rstrip("/")

    @property
    def name(self) -> str:
        """The server as messages name it: the service root (it carries no secret)."""
        return self.url
