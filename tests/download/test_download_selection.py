"""Selection from the real offline IDC index (idc-index-data 25.0.5), and config checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from detect.download import DownloadConfig, select_series
from detect.download.config import parse_list
from detect.errors import ConfigError, DownloadError

idc_index_data = pytest.importorskip(
    "idc_index_data", reason="idc-index is not installed: pip install -e '.[idc]'"
)
INDEX_VERSION = "25.0.5"  # the counts below are this release's
needs_pinned_index = pytest.mark.skipif(
    idc_index_data.__version__ != INDEX_VERSION,
    reason=f"counts are those of idc-index-data {INDEX_VERSION}, "
           f"installed: {idc_index_data.__version__}",
)


def select(tmp_path: Path, **options: object):
    return select_series(DownloadConfig(out=tmp_path / "out", **options))  # type: ignore[arg-type]


@needs_pinned_index
def test_letter_e_ct_and_sr(tmp_path: Path) -> None:
    selection = select(tmp_path, letters=("E",), modalities=("CT", "SR"))
    table = selection.by_modality()
    counts = {m: (row["series"], row["instances"], row["patients"]) for m, row in table.items()}
    assert counts == {"CT": (11, 808, 5), "SR": (10, 10, 5)}
    assert table["CT"]["size_bytes"] == pytest.approx(426.9e6, rel=1e-3)
    assert selection.patients_by_letter() == {"E": 5}
    assert set(table) == {"CT", "SR"}
    assert not selection.refused


@needs_pinned_index
def test_whole_collection_matches_the_published_counts(tmp_path: Path) -> None:
    selection = select(tmp_path, modalities=("CT", "SR", "PT"))
    table = selection.by_modality()
    assert selection.patients == 355
    assert (table["CT"]["series"], table["CT"]["instances"]) == (1162, 205_459)
    assert (table["PT"]["series"], table["PT"]["instances"]) == (133, 45_676)
    assert (table["SR"]["series"], table["SR"]["instances"]) == (1091, 1091)
    assert table["CT"]["size_bytes"] == pytest.approx(123.3e9, rel=1e-3)
    assert selection.patients_by_letter() == {"A": 251, "B": 38, "E": 5, "G": 61}
    assert len({e.study_uid for e in selection.series}) == 436
    assert not selection.refused


def test_sr_means_the_box_series_in_their_ct_studies(tmp_path: Path) -> None:
    """SR: only IDC's lung_pet_ct_dx_annotations (never the AI SEGs), each in a study
    that holds CT of the same patient."""
    selection = select(tmp_path, letters=("B",), modalities=("CT", "SR"))
    ct_studies = {(e.patient_id, e.study_uid) for e in selection.series if e.modality == "CT"}
    boxes = [e for e in selection.series if e.modality == "SR"]
    assert boxes and {e.modality for e in selection.series} == {"CT", "SR"}
    assert all((e.patient_id, e.study_uid) in ct_studies for e in boxes)
    assert all(e.instances == 1 for e in boxes)


def test_patients_by_id_short_or_long(tmp_path: Path) -> None:
    selection = select(tmp_path, patients=("A0002", "Lung_Dx-B0021"), modalities=("CT",))
    assert {e.patient_id for e in selection.series} == {"Lung_Dx-A0002", "Lung_Dx-B0021"}
    a0002 = [e for e in selection.series if e.patient_id == "Lung_Dx-A0002"]
    # as the real A0002 download holds it: two CT series of 30 slices, 15.8 MB each
    assert sorted(e.instances for e in a0002) == [30, 30]
    assert sorted(e.size_bytes for e in a0002) == [15_818_868, 15_820_248]
    for entry in selection.series:
        assert entry.folder == (f"lung_pet_ct_dx/{entry.patient_id}/{entry.study_uid}/"
                                f"{entry.series_uid}")
        assert entry.source_url.startswith("s3://idc-open-data/")


def test_unknown_patient_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="Lung_Dx-A9999") as caught:
        select(tmp_path, patients=("Lung_Dx-A0002", "Lung_Dx-A9999"))
    assert "\n" not in str(caught.value)


def test_empty_selection_and_unknown_collection(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="nothing selected"):
        select(tmp_path, letters=("E",), modalities=("PT",))  # no E patient has PET
    with pytest.raises(DownloadError, match="no_such_collection"):
        select(tmp_path, collection="no_such_collection", modalities=("CT",))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"patients": ("Lung_Dx-A0002",), "letters": ("A",)}, "not both"),
        ({"letters": ("Q",)}, "--letters takes A,B,E,G, got Q"),
        ({"modalities": ("MR",)}, "--modality takes"),
        ({"modalities": ()}, "--modality takes"),
        ({"collection": "nsclc_radiomics", "modalities": ("SR",)}, "SR means"),
        ({"collection": "nsclc_radiomics", "letters": ("A",)}, "has none"),
        ({"collection": "../x"}, "--collection"),
        ({"patients": ("../../etc",)}, "not a safe folder name"),
        ({"endpoint": "ftp://example.org"}, "--endpoint must be an http"),
        ({"endpoint": "s3.amazonaws.com"}, "--endpoint must be an http"),
    ],
)
def test_bad_options(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DownloadConfig(out=tmp_path / "out", **options)


def test_out_must_not_be_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="OUT must be a folder"):
        DownloadConfig(out=tmp_path / "file")


def test_options_are_normalised() -> None:
    config = DownloadConfig(out=Path("o"), letters=parse_list("e, a,e"),
                            modalities=parse_list("ct,sr"))
    assert config.letters == ("E", "A") and config.modalities == ("CT", "SR")
