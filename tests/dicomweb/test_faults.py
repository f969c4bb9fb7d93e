"""detect predict URL against a stub DICOMweb server on 127.0.0.1 for the faults a real
Orthanc will not produce: each ends in one line naming the server and the request, exit
code 1, nothing left in OUT and nothing pushed; a 429 then 200 is retried and succeeds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.detectors import SquareFinder
from support.dicomweb import (
    Stub,
    bomb,
    longer_than_declared,
    loopback_only,
    running_stub,
    slow,
    status,
    truncated,
    wrong_type,
)
from support.yolo import write_ct_series
from typer.testing import CliRunner

from detect.cli import app
from detect.shipped import real_weights

pytest.importorskip("dicomweb_client", reason="the dicomweb extra is not installed: "
                    "pip install -e '.[dicomweb]'")
runner = CliRunner()


@pytest.fixture
def series(tmp_path: Path) -> list[Path]:
    """Two CT series of one study (3 slices each): a fault in the second one comes after
    the first was predicted and written."""
    first = write_ct_series(tmp_path / "ct" / "a", slices=3, series_uid="1.2.826.0.1.1")
    second = write_ct_series(tmp_path / "ct" / "b", slices=3, series_uid="1.2.826.0.1.2")
    import pydicom

    study = str(pydicom.dcmread(first[0]).StudyInstanceUID)
    for path in second:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = study
        ds.save_as(path)
    return first + second


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: SquareFinder())
    return real_weights()


def _predict(stub: Stub, out: Path, model: Path, *extra: str) -> tuple[int, str, float]:
    start = time.monotonic()
    done = runner.invoke(app, ["predict", stub.url, "--study", stub.study, "--weights",
                               str(model), "--out", str(out), "--device", "cpu",
                               "--save", "json,voc,sr", "--push", *extra])
    return done.exit_code, done.output, time.monotonic() - start


FAULTS = {
    "500 on an instance": ("instance", status(500), "answered 500"),
    "503 that never ends": ("instance", status(503), "still unavailable after 3 retries"),
    "404 on the series list": ("series", status(404), "answered 404"),
    "403 on the first request": ("check", status(403), "answered 403"),
    "truncated multipart": ("instance", truncated, "the body was cut short (IncompleteRead("),
    "body longer than Content-Length": ("instance", longer_than_declared, "(truncated)"),
    "wrong content type": ("instance", wrong_type, "wrong-content-type"),
    "gzip body far larger than declared": ("series", bomb, "too-large"),
    "slow answer past the timeout": ("instance", slow(3.0), "no answer within 1 s"),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_each_fault_is_one_line_with_nothing_written_and_nothing_pushed(
        name: str, series: list[Path], fake_model: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    kind, fault, expected = FAULTS[name]
    attempts = loopback_only(monkeypatch)
    monkeypatch.setattr("detect.dicomweb.session.pause", lambda s: None)  # back-off
    out = tmp_path / "out"
    with running_stub(Stub(series, faults={kind: fault})) as stub:
        code, output, seconds = _predict(stub, out, fake_model, "--timeout", "1")
    lines = output.strip().splitlines()
    assert code == 1, output
    assert len(lines) == 1, output
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert stub.url.split("/dicom-web")[0] in lines[0]  # names the server
    assert not out.exists()  # nothing half-written
    assert not [r for r in stub.requests if r.startswith("POST")]  # nothing pushed
    assert attempts == []
    assert seconds < 20, seconds


def test_a_fault_in_the_second_series_removes_what_the_first_wrote(
        series: list[Path], fake_model: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)
    failing = str(pydicom_uid(series[4]))
    calls = {"n": 0}

    def second_series_fails(handler, body, content_type):  # type: ignore[no-untyped-def]
        if not handler.path.endswith(failing):
            return False
        calls["n"] += 1
        handler.send(500, "text/plain", b"boom")
        return True

    from detect.io.ledger import Ledger

    removed: list[int] = []
    clear = Ledger.clear
    monkeypatch.setattr(Ledger, "clear", lambda self: removed.append(clear(self)) or removed[-1])
    out = tmp_path / "out"
    out.mkdir()  # the user's (empty) folder: it stays, with predict's hidden bookkeeping
    with running_stub(Stub(series, faults={"instance": second_series_fails})) as stub:
        code, output, _ = _predict(stub, out, fake_model)
    assert code == 1 and "answered 500" in output and calls["n"] == 1
    assert removed and removed[-1] >= 3  # the first series' VOC files were written...
    assert [p.name for p in out.rglob("*") if not p.name.startswith(".")] == []  # ...and gone


def pydicom_uid(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def test_429_then_200_is_retried_after_the_servers_wait(
        series: list[Path], fake_model: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)
    waits: list[float] = []
    monkeypatch.setattr("detect.dicomweb.session.pause", waits.append)
    with running_stub(Stub(series, faults={"series": status(429, times=2,
                                                            retry_after="2")})) as stub:
        code, output, _ = _predict(stub, tmp_path / "out", fake_model)
    assert code == 0, output
    assert waits == [2.0, 2.0]
    assert sum(r.startswith("GET") and "/series" in r and "/instances" not in r
               for r in stub.requests) == 3
    assert (tmp_path / "out" / "predictions.json").is_file()
    assert "pushed 2 SR(s)" in output  # the stub takes the POSTs without a body


def test_a_refused_connection_fails_at_once(fake_model: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from support.dicomweb import free_port

    loopback_only(monkeypatch)
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    start = time.monotonic()
    done = runner.invoke(app, ["predict", url, "--study", "1.2.3", "--weights",
                               str(fake_model), "--out", str(tmp_path / "out")])
    assert done.exit_code == 1
    lines = done.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot reach {url}"), done.output
    assert lines[0].endswith(": GET studies?limit=1: Connection refused"), lines[0]
    assert time.monotonic() - start < 10
    assert not (tmp_path / "out").exists()


def test_tls_is_verified_and_a_ca_bundle_is_trusted(
        series: list[Path], fake_model: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from support.dicomweb import self_signed

    loopback_only(monkeypatch)
    cert, key = self_signed(tmp_path)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with running_stub(Stub(series), tls=(cert, key)) as stub:
        refused = runner.invoke(app, ["predict", stub.url, "--study", stub.study, "--weights",
                                      str(fake_model), "--out", str(tmp_path / "no")])
        trusted = runner.invoke(app, ["predict", stub.url, "--study", stub.study, "--weights",
                                      str(fake_model), "--out", str(tmp_path / "yes"),
                                      "--ca-bundle", str(cert), "--device", "cpu"])
    (line,) = refused.output.strip().splitlines()
    assert refused.exit_code == 1 and line.startswith(f"error: cannot reach {stub.url}: TLS ")
    assert "pass --ca-bundle" in line and not (tmp_path / "no").exists()
    assert trusted.exit_code == 0, trusted.output
    assert "predicted 6 slices of 2 CT series" in trusted.output
