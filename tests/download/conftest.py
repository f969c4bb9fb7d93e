"""Fixtures of the download tests: no internet, and a local S3 endpoint on 127.0.0.1.

Nothing here reaches beyond 127.0.0.1: Python sockets may only connect there, and the
s5cmd subprocess gets a dead proxy for every other host (Go's HTTP client never proxies
loopback, so the local endpoint still works) and no cloud metadata lookups.
(This folder is a package, so this conftest does not shadow tests/conftest.py.)
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator

import pytest
from support.dicomweb import loopback_only
from support.idc import BUCKET, LocalS3

pytest.importorskip("duckdb", reason="the IDC extra is not installed: pip install -e '.[idc]'")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse every connection and DNS lookup that is not loopback (in this process),
    and send s5cmd's non-loopback traffic to a closed port."""
    attempts = loopback_only(monkeypatch)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield attempts
    assert not attempts, f"a test tried to reach the network: {attempts}"


@pytest.fixture(scope="session")
def _s3_endpoint() -> Iterator[str]:
    """One moto S3 server on 127.0.0.1 for the session (stopping one takes 0.5 s)."""
    pytest.importorskip("moto", reason="moto[server] (the dev extra) is not installed")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def local_s3(_s3_endpoint: str, offline: list[str]) -> Iterator[LocalS3]:
    """An empty bucket ``idc-open-data`` on the local server, wiped after the test."""
    import boto3

    client = boto3.client(
        "s3", endpoint_url=_s3_endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",  # moto's dummy signer
    )
    client.create_bucket(Bucket=BUCKET)
    try:
        yield LocalS3(_s3_endpoint, client)
    finally:  # moto keeps its buckets in process-wide state
        request = urllib.request.Request(f"{_s3_endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request).close()
