"""DICOMweb servers for tests, on 127.0.0.1 only: a real Orthanc with its DICOMweb plugin
(started from a temporary configuration on a free port, storage in a temporary folder,
stopped after), and a stub ``http.server`` that answers what a real server will not (a 500,
a 429, a cut body, a slow answer...). ``loopback_only`` refuses every other connection."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pydicom
import pytest

ORTHANC = shutil.which("Orthanc")
PLUGINS = (Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so"),
           *sorted(Path("/usr/lib/orthanc").glob("libOrthancDicomWeb.so*")))
LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: urllib without proxies (urlopen's shared opener keeps the proxies of its first call).
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def dicomweb_plugin() -> Path | None:
    return next((p for p in PLUGINS if p.exists()), None)


def require_orthanc() -> tuple[str, Path]:
    """Orthanc and its DICOMweb plugin, or a visible skip saying how to install them."""
    plugin = dicomweb_plugin()
    if ORTHANC is None or plugin is None:
        pytest.skip("Orthanc with its DICOMweb plugin is not installed "
                    "(apt-get install orthanc orthanc-dicomweb; make test does it)")
    pytest.importorskip("dicomweb_client", reason="the dicomweb extra is not installed: "
                        "pip install -e '.[dicomweb]'")
    return ORTHANC, plugin


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Orthanc:
    """A running Orthanc: ``rest`` its REST root, ``url`` its DICOMweb service root."""

    rest: str
    process: subprocess.Popen[bytes]
    auth: tuple[str, str] | None = None

    @property
    def url(self) -> str:
        return f"{self.rest}/dicom-web"

    def call(self, method: str, path: str, data: bytes | None = None) -> Any:
        request = urllib.request.Request(f"{self.rest}{path}", data=data, method=method)
        if self.auth:
            token = base64.b64encode(":".join(self.auth).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with _DIRECT.open(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def store(self, files: Sequence[Path]) -> None:
        for path in files:
            self.call("POST", "/instances", path.read_bytes())

    def count(self, what: str = "CountInstances") -> int:
        return int(self.call("GET", "/statistics")[what])

    def modalities(self) -> list[str]:
        return sorted(self.call("GET", f"/series/{s}")["MainDicomTags"].get("Modality", "")
                      for s in self.call("GET", "/series"))


@contextmanager
def running_orthanc(folder: Path, users: dict[str, str] | None = None) -> Iterator[Orthanc]:
    """Orthanc on 127.0.0.1 and a free port, its storage and config in ``folder``; HTTP
    basic authentication on when ``users`` is given. Stopped (and waited for) after."""
    binary, plugin = require_orthanc()
    folder.mkdir(parents=True, exist_ok=True)
    for _attempt in range(3):
        port = free_port()
        config = {
            "Name": "detect-test", "StorageDirectory": str(folder / "db"),
            "IndexDirectory": str(folder / "db"), "HttpPort": port,
            "DicomServerEnabled": False, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": bool(users), "RegisteredUsers": users or {},
            "HttpCompressionEnabled": False, "Plugins": [str(plugin)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        }
        (folder / "orthanc.json").write_text(json.dumps(config))
        log = open(folder / "orthanc.log", "wb")  # noqa: SIM115  (closed below)
        process = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=log,
                                   stderr=subprocess.STDOUT)
        server = Orthanc(f"http://127.0.0.1:{port}", process,
                         next(iter(users.items())) if users else None)
        if _wait_ready(server):
            break
        process.terminate()
        process.wait(timeout=30)
        log.close()
    else:
        raise RuntimeError(f"Orthanc did not start: {(folder / 'orthanc.log').read_text()[-800:]}")
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(server: Orthanc, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            server.call("GET", "/system")
            return True
        except OSError:
            time.sleep(0.1)
    return False


def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Refuse every connection and DNS lookup that is not loopback; the attempts are
    returned in a list the test can check."""
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            attempts.append(f"connect {address!r}")
            raise OSError(f"network disabled in tests: connect {address!r}")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOOPBACK:
            attempts.append(f"dns {host!r}")
            raise OSError(f"network disabled in tests: dns {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    return attempts


# --- the stub ---------------------------------------------------------------------------

BOUNDARY = "detect-stub-boundary"
#: What a fault does to the answer of the request it matches.
Fault = Callable[["StubHandler", bytes, str], bool]


def _qido(item: dict[str, str]) -> dict[str, Any]:
    tags = {"StudyInstanceUID": ("0020000D", "UI"), "SeriesInstanceUID": ("0020000E", "UI"),
            "SOPInstanceUID": ("00080018", "UI"), "PatientID": ("00100020", "LO"),
            "Modality": ("00080060", "CS"), "NumberOfSeriesRelatedInstances": ("00201209", "IS")}
    return {tags[k][0]: {"vr": tags[k][1], "Value": [v]} for k, v in item.items()}


@dataclass
class Stub:
    """A stub DICOMweb server holding ``files`` (one study); ``faults`` maps a request
    kind (``check``, ``series``, ``instances``, ``instance``, ``store``) to what goes
    wrong; ``requests`` records every request line."""

    files: Sequence[Path]
    faults: dict[str, Fault] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self.datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in self.files]
        self.study = str(self.datasets[0].StudyInstanceUID)

    def answer(self, kind: str, path: str) -> tuple[int, str, bytes]:
        if kind == "check":
            return 200, "application/dicom+json", json.dumps([_qido(
                {"StudyInstanceUID": self.study})]).encode()
        if kind == "series":
            by_series: dict[str, list[Any]] = {}
            for ds in self.datasets:
                by_series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
            rows = [_qido({"StudyInstanceUID": self.study, "SeriesInstanceUID": uid,
                           "PatientID": str(items[0].PatientID), "Modality": "CT",
                           "NumberOfSeriesRelatedInstances": str(len(items))})
                    for uid, items in by_series.items()]
            return 200, "application/dicom+json", json.dumps(rows).encode()
        if kind == "instances":
            if "/series/" not in path:  # is the SR there? (--push)
                return 200, "application/dicom+json", b"[]"
            series = path.split("/series/")[1].split("/")[0]
            rows = [_qido({"SOPInstanceUID": str(ds.SOPInstanceUID)}) for ds in self.datasets
                    if str(ds.SeriesInstanceUID) == series]
            return 200, "application/dicom+json", json.dumps(rows).encode()
        if kind == "instance":
            sop = path.rsplit("/", 1)[1]
            index = [str(ds.SOPInstanceUID) for ds in self.datasets].index(sop)
            body = multipart(self.files[index].read_bytes())
            return 200, f'multipart/related; type="application/dicom"; boundary={BOUNDARY}', body
        if kind == "store":
            return 200, "application/dicom+json", b"{}"
        return 404, "text/plain", b"not here"


def multipart(part: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part
            + f"\r\n--{BOUNDARY}--\r\n".encode())


def request_kind(path: str, method: str) -> str:
    if method == "POST":
        return "store"
    if "/instances/" in path:
        return "instance"
    if path.endswith("/instances") or "/instances?" in path:
        return "instances"
    if "/series" in path:
        return "series"
    return "check"


class StubHandler(BaseHTTPRequestHandler):
    stub: Stub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._serve("POST")

    def _serve(self, method: str) -> None:
        self.stub.requests.append(f"{method} {self.path}")
        kind = request_kind(self.path.split("?")[0], method)
        status, content_type, body = self.stub.answer(kind, self.path.split("?")[0])
        fault = self.stub.faults.get(kind)
        if fault is not None and fault(self, body, content_type):
            return
        self.send(status, content_type, body)

    def send(self, status: int, content_type: str, body: bytes, *,
             length: int | None = None, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up on a fault is what the fault tests want


@contextmanager
def running_stub(stub: Stub, tls: tuple[Path, Path] | None = None) -> Iterator[Stub]:
    """Serve ``stub`` on 127.0.0.1 (over TLS with ``tls`` = (certificate, key))."""
    handler = type("Handler", (StubHandler,), {"stub": stub})
    server = _QuietServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    stub.url = f"{scheme}://127.0.0.1:{server.server_address[1]}/dicom-web"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself (openssl), and its key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True,
                   capture_output=True)
    return cert, key


# Faults: each answers instead of the stub (True) or lets it answer (False).

def status(code: int, times: int | None = None, retry_after: str | None = None) -> Fault:
    """Answer ``code`` (``times`` times, then normally)."""
    left = [times]

    def fault(handler: StubHandler, body: bytes, content_type: str) -> bool:
        if left[0] is not None:
            if left[0] <= 0:
                return False
            left[0] -= 1
        headers = {"Retry-After": retry_after} if retry_after else None
        handler.send(code, "text/plain", b"stub fault", headers=headers)
        return True

    return fault


def truncated(handler: StubHandler, body: bytes, content_type: str) -> bool:
    """Declare the whole body, send half of it, close the connection."""
    handler.send(200, content_type, body[: len(body) // 2], length=len(body))
    handler.close_connection = True
    return True


def longer_than_declared(handler: StubHandler, body: bytes, content_type: str) -> bool:
    """Declare half the body, send all of it."""
    handler.send(200, content_type, body, length=len(body) // 2)
    handler.close_connection = True
    return True


def wrong_type(handler: StubHandler, body: bytes, content_type: str) -> bool:
    handler.send(200, "text/html", b"<html>login page</html>")
    return True


_BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)  # ~64 kB


def bomb(handler: StubHandler, body: bytes, content_type: str) -> bool:
    """A 64 kB gzip body that inflates to 64 MiB (1000 times its declared length)."""
    handler.send(200, content_type, _BOMB, headers={"Content-Encoding": "gzip"})
    return True


def slow(seconds: float) -> Fault:
    def fault(handler: StubHandler, body: bytes, content_type: str) -> bool:
        time.sleep(seconds)
        handler.send(200, content_type, body)
        return True

    return fault
