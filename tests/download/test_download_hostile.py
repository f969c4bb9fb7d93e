"""Index values that must never become paths: checked, refused, reported; nothing is
written outside OUT."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from support.idc import BUCKET, index_row, series_files, tree_files, write_index
from typer.testing import CliRunner

from detect.cli import app
from detect.download import DownloadConfig, download, read_manifest, select_series
from detect.download.fetch import cp_commands
from detect.download.names import UnsafeValue, check_patient_id, check_uid, series_folder
from detect.errors import DownloadError

STUDY, SERIES = "1.2.826.0.1.1", "1.2.826.0.1.1.1"
SAFE_URL = f"s3://{BUCKET}/00000000-0000-4000-8000-000000000001/*"


@pytest.mark.parametrize(
    "value", ["..", ".", "../..", "1.2/../../x", "1.2\\3", "", " 1.2", "1.2.", "1..2", "a.1",
              "1" * 65, "1.2\n3", None, 12],
)
def test_uid_check_refuses(value: object) -> None:
    with pytest.raises(UnsafeValue):
        check_uid("SeriesInstanceUID", value)


@pytest.mark.parametrize(
    "value", ["..", ".", "../../etc", "a/b", "/abs", "-rf", ".hidden", "a b", "a\x00b",
              "C:evil", "~root", "", "x" * 65, "Lung_Dx-A0001\n"],
)
def test_patient_id_check_refuses(value: str) -> None:
    with pytest.raises(UnsafeValue):
        check_patient_id(value)


def test_safe_values_pass() -> None:
    assert check_uid("StudyInstanceUID", "1.3.6.1.4.1.14519.5.2.1.6655") == (
        "1.3.6.1.4.1.14519.5.2.1.6655")
    assert series_folder("lung_pet_ct_dx", "Lung_Dx-A0002", "1.2", "1.2.3") == (
        "lung_pet_ct_dx/Lung_Dx-A0002/1.2/1.2.3")


def hostile_index(path: Path) -> Path:
    return write_index(path, [
        index_row("Lung_Dx-A0001", STUDY, SERIES, "CT", 3, source_url=SAFE_URL),
        index_row("../../escaped", STUDY, "1.2.826.0.1.1.2", "CT", 2),
        index_row("Lung_Dx-A0003", "1.2/../../../escaped", "1.2.826.0.1.1.3", "CT", 2),
        index_row("Lung_Dx-A0004", STUDY, "..", "SR", 1),
        index_row("Lung_Dx-A0005", STUDY, "1.2.826.0.1.1.5", "CT", 2,
                  source_url=f"s3://{BUCKET}/../../*"),
        index_row("Lung_Dx-A0006", STUDY, "1.2.826.0.1.1.6", "CT", 0),
        index_row("Lung_Dx-A0001", STUDY, SERIES, "CT", 3),  # the same series twice
        index_row("Lung_Dx-A0007", STUDY, "1.2.826.0.1.1.7", "SEG", 1,
                  analysis_result_id="bamf_aimi_annotations"),  # never selected
    ])


def test_hostile_rows_are_refused_and_reported(tmp_path: Path) -> None:
    index = hostile_index(tmp_path / "index.parquet")
    selection = select_series(DownloadConfig(out=tmp_path / "out", index=index,
                                             modalities=("CT", "SR")))
    assert [e.series_uid for e in selection.series] == [SERIES]
    reasons = {r.patient_id: r.reason for r in selection.refused}
    assert set(reasons) == {"../../escaped", "Lung_Dx-A0003", "Lung_Dx-A0004",
                            "Lung_Dx-A0005", "Lung_Dx-A0006", "Lung_Dx-A0001"}
    assert "PatientID '../../escaped' is not a safe folder name" in reasons["../../escaped"]
    assert "StudyInstanceUID" in reasons["Lung_Dx-A0003"]
    assert "SeriesInstanceUID '..'" in reasons["Lung_Dx-A0004"]
    assert "series_aws_url" in reasons["Lung_Dx-A0005"]
    assert "instanceCount 0" in reasons["Lung_Dx-A0006"]
    assert "listed twice" in reasons["Lung_Dx-A0001"]


def test_hostile_index_through_the_cli_writes_nothing_outside_out(
    tmp_path: Path, local_s3, monkeypatch: pytest.MonkeyPatch
) -> None:
    import idc_index_data

    index = hostile_index(tmp_path / "index.parquet")
    monkeypatch.setattr(idc_index_data, "IDC_INDEX_PARQUET_FILEPATH", index)
    safe = select_series(DownloadConfig(out=tmp_path / "o", index=index)).series[0]
    local_s3.put_series(SAFE_URL, series_files(safe))
    out = tmp_path / "work" / "out"
    out.parent.mkdir()

    result = CliRunner().invoke(app, ["download", str(out), "--endpoint", local_s3.endpoint])
    assert result.exit_code == 1
    *progress, line = result.stderr.strip().splitlines()  # a line per finished series
    assert all(p.startswith("series ") for p in progress)
    assert "refused 6 index row(s) with unsafe values" in line
    assert "refused 6" in result.stdout  # the selection summary says it first
    assert sorted(os.listdir(tmp_path)) == ["index.parquet", "work"]
    assert os.listdir(tmp_path / "work") == ["out"]
    assert tree_files(out) == {
        "idc-manifest.json", "lung_pet_ct_dx", "lung_pet_ct_dx/Lung_Dx-A0001",
        f"lung_pet_ct_dx/Lung_Dx-A0001/{STUDY}", f"lung_pet_ct_dx/Lung_Dx-A0001/{STUDY}/{SERIES}",
        *(f"lung_pet_ct_dx/Lung_Dx-A0001/{STUDY}/{SERIES}/{name}" for name in
          os.listdir(out / "lung_pet_ct_dx" / "Lung_Dx-A0001" / STUDY / SERIES)),
    }
    manifest = read_manifest(out)
    assert len(manifest["refused"]) == 6 and manifest["totals"]["instances"] == 3


def test_a_selection_of_only_unsafe_rows_downloads_nothing(tmp_path: Path) -> None:
    index = write_index(tmp_path / "index.parquet",
                        [index_row("../x", STUDY, SERIES, "CT", 1)])
    config = DownloadConfig(out=tmp_path / "out", index=index)
    selection = select_series(config)
    assert not selection.series and len(selection.refused) == 1
    with pytest.raises(DownloadError, match="downloaded 0 safe series, but refused 1"):
        download(config, selection)
    assert os.listdir(tmp_path / "out") == ["idc-manifest.json"]


def test_s5cmd_commands_hold_only_checked_tokens(tmp_path: Path) -> None:
    from detect.download.check import SeriesCount
    from detect.download.index import SeriesEntry

    good = SeriesEntry("Lung_Dx-A0001", STUDY, SERIES, "CT", 1, 10, SAFE_URL,
                       f"lung_pet_ct_dx/Lung_Dx-A0001/{STUDY}/{SERIES}")
    assert cp_commands([SeriesCount(good, 0, 0)]) == (
        f"cp -n {SAFE_URL} lung_pet_ct_dx/Lung_Dx-A0001/{STUDY}/{SERIES}/\n")
    for bad in (replace(good, folder="a/../../b"), replace(good, source_url="s3://b/x y/*")):
        with pytest.raises(UnsafeValue):
            cp_commands([SeriesCount(bad, 0, 0)])


def test_an_unreadable_index_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "index.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(DownloadError, match="cannot read the IDC index") as caught:
        select_series(DownloadConfig(out=tmp_path / "out", index=bad))
    assert "\n" not in str(caught.value)


def test_the_network_guard_refuses_other_hosts(offline: list[str]) -> None:
    """The guard every test here runs under: only 127.0.0.1 may be reached."""
    import socket

    with pytest.raises(OSError, match="network disabled"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)  # TEST-NET-1, never routed
    with pytest.raises(OSError, match="network disabled"):
        socket.getaddrinfo("s3.amazonaws.com", 443)
    assert len(offline) == 2
    offline.clear()  # seen and refused: the test passes
