"""A throw-away Orthanc with its DICOMweb plugin for the tools (``viewer_check.py``, the
DICOMweb benchmark): a temporary configuration and storage, a free port on 127.0.0.1,
stopped when the ``with`` block ends. (The tests have their own in tests/support.)"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chromium_pipe import CheckFailed

PLUGINS = (Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so"),
           *sorted(Path("/usr/lib/orthanc").glob("libOrthancDicomWeb.so*")))
#: urllib without proxies: everything here is on 127.0.0.1.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, data: bytes | None = None) -> Any:
    request = urllib.request.Request(url, data=data, method=method)
    with _DIRECT.open(request, timeout=60) as response:
        body = response.read()
    return json.loads(body) if body else None


@contextmanager
def orthanc(folder: Path) -> Iterator[str]:
    """Orthanc with DICOMweb on 127.0.0.1 and a free port; yields its REST root."""
    binary = shutil.which("Orthanc")
    plugin = next((p for p in PLUGINS if p.exists()), None)
    if binary is None or plugin is None:
        raise CheckFailed("Orthanc or its DICOMweb plugin is missing: apt-get install orthanc "
                          "orthanc-dicomweb")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {"Name": "detect-viewer-check", "HttpPort": port, "DicomServerEnabled": False,
              "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
              "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
              "Plugins": [str(plugin)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
    (folder / "orthanc.json").write_text(json.dumps(config))
    with open(folder / "orthanc.log", "wb") as log:
        process = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=log,
                                   stderr=subprocess.STDOUT)
        rest = f"http://127.0.0.1:{port}"
        try:
            _wait(lambda: http("GET", f"{rest}/system") is not None, 30, "Orthanc to start")
            yield rest
        finally:
            process.terminate()
            process.wait(timeout=30)


def _wait(ready: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            result = ready()
            if result:
                return result
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise CheckFailed(f"waited {seconds:g} s for {what}")
