"""Credentials for a DICOMweb server: HTTP basic or a bearer token.

They come from the environment (``DETECT_DICOMWEB_USER`` and ``DETECT_DICOMWEB_PASSWORD``,
or ``DETECT_DICOMWEB_TOKEN``) or from a file given by ``--auth-file`` holding the same
``NAME=value`` lines (``#`` comments allowed), which must be a regular file of the current
user that nobody else may read (mode 600, as ssh demands of a private key). Never from
the command line. A secret never appears in a message, a log line or ``repr``: messages
say where the credentials came from, not what they are.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from detect.errors import ConfigError

ENV_USER = "DETECT_DICOMWEB_USER"
ENV_PASSWORD = "DETECT_DICOMWEB_PASSWORD"
ENV_TOKEN = "DETECT_DICOMWEB_TOKEN"
NAMES = (ENV_USER, ENV_PASSWORD, ENV_TOKEN)
#: An auth file is a few lines; anything larger is not one.
AUTH_FILE_MAX_BYTES = 64 * 1024


class BearerAuth(AuthBase):
    """``Authorization: Bearer <token>`` on every request (requests drops it when a
    redirect leaves the host)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(<hidden>)"


@dataclass(frozen=True)
class Credentials:
    """What to authenticate with; ``source`` says where it came from (for messages)."""

    kind: str  # "none", "basic" or "bearer"
    source: str
    user: str = field(default="", repr=False)
    secret: str = field(default="", repr=False)

    def auth(self) -> AuthBase | None:
        """The requests authentication handler, or None without credentials."""
        if self.kind == "basic":
            return HTTPBasicAuth(self.user, self.secret)
        if self.kind == "bearer":
            return BearerAuth(self.secret)
        return None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values that must never be shown (for tests and redaction)."""
        return tuple(v for v in (self.secret,) if v)


NO_CREDENTIALS = Credentials("none", "none")


def load_credentials(auth_file: Path | None, environ: Mapping[str, str] | None = None
                     ) -> Credentials:
    """The credentials of ``--auth-file`` when given, else of the environment, else none.

    Raises:
        ConfigError: the file is missing, not private (mode 600) or malformed; a user
            without a password or both a user and a token.
    """
    if auth_file is not None:
        return _from_values(_read_auth_file(auth_file), f"--auth-file {auth_file}")
    env = os.environ if environ is None else environ
    values = {name: env[name] for name in NAMES if env.get(name)}
    return _from_values(values, "the environment")


def _from_values(values: Mapping[str, str], source: str) -> Credentials:
    user, password, token = (values.get(name, "") for name in NAMES)
    for name, value in values.items():
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ConfigError(f"{name} from {source} holds a control character")
    if token and (user or password):
        raise ConfigError(f"{source} gives both {ENV_TOKEN} and {ENV_USER}/{ENV_PASSWORD}; "
                          f"give one kind of credentials")
    if token:
        return Credentials("bearer", source, secret=token)
    if bool(user) != bool(password):
        missing = ENV_PASSWORD if user else ENV_USER
        raise ConfigError(f"{source} gives {ENV_USER if user else ENV_PASSWORD} without "
                          f"{missing}; give both for HTTP basic authentication")
    if ":" in user:
        raise ConfigError(f"{ENV_USER} from {source} holds ':', which HTTP basic "
                          f"authentication cannot carry")
    if user:
        return Credentials("basic", source, user=user, secret=password)
    return NO_CREDENTIALS


def _read_auth_file(path: Path) -> dict[str, str]:
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"--auth-file {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"--auth-file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"--auth-file {path} may be read by others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"make it private with: chmod 600 {path}"
        )
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise ConfigError(f"--auth-file {path} belongs to another user; use a file of your own")
    if info.st_size > AUTH_FILE_MAX_BYTES:
        raise ConfigError(f"--auth-file {path} is {info.st_size} bytes, more than an auth "
                          f"file's {AUTH_FILE_MAX_BYTES}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--auth-file {path} cannot be read as UTF-8 text ({type(exc).__name__})"
                          ) from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.strip().removeprefix("export ").strip()
        if not sep or name not in NAMES:
            raise ConfigError(
                f"--auth-file {path} line {number}: expected NAME=value with NAME one of "
                f"{', '.join(NAMES)}"
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values
