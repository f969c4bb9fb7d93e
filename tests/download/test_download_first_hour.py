"""What a new user of ``detect download`` meets first: an empty selection option is an
error (not the whole collection), an endpoint that cannot be reached is one line within
seconds with nothing written, and the fetch says which series are done as it goes."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from support.idc import series_files
from typer.testing import CliRunner

from detect.cli import app
from detect.download import DownloadConfig, select_series

pytest.importorskip("idc_index_data", reason="idc-index is not installed: pip install -e '.[idc]'")

PATIENT = "Lung_Dx-A0025"
runner = CliRunner()


@pytest.mark.parametrize("option", ["--patients", "--letters", "--modality"])
@pytest.mark.parametrize("value", ["", ",", " ", " , "])
def test_an_empty_selection_option_is_refused(option: str, value: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["download", str(tmp_path / "out"), option, value,
                                 "--dry-run"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {option} is empty ({value!r}); give at least one value, or leave {option} "
        f"out to select the whole collection"]
    assert "355 patients" not in result.stdout and not (tmp_path / "out").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_endpoint_that_refuses_is_one_line_within_seconds(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    result = runner.invoke(app, ["download", str(tmp_path / "out"), "--patients", PATIENT,
                                 "--endpoint", endpoint])
    seconds = time.monotonic() - start
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot reach {endpoint}: Connection refused; check the network (or proxy "
        f"settings), or pass --endpoint with a reachable mirror (nothing was written)"]
    assert seconds < 10, seconds  # s5cmd's retries took 79-109 s before
    assert not (tmp_path / "out").exists()


def test_an_endpoint_that_does_not_resolve_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["download", str(tmp_path / "out"), "--patients", PATIENT,
                                 "--endpoint", "https://s3.invalid"])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach https://s3.invalid: ")
    assert not (tmp_path / "out").exists()


def test_the_fetch_prints_a_line_per_finished_series(local_s3, tmp_path: Path) -> None:
    config = DownloadConfig(out=tmp_path / "out", patients=(PATIENT,))
    entries = select_series(config).series
    for entry in entries:
        local_s3.put_series(entry.source_url, series_files(entry))
    result = runner.invoke(app, ["download", str(tmp_path / "out"), "--patients", PATIENT,
                                 "--endpoint", local_s3.endpoint])
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [f"series {n}/4 done" for n in (1, 2, 3, 4)]
    named = {line.split()[3] for line in lines}  # patient modality SeriesInstanceUID
    assert {e.series_uid for e in entries} == {line.split()[5] for line in lines}
    assert named == {PATIENT}
