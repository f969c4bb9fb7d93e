"""Tests of detect.synth.cohort: the phantom cohort in the Lung-PET-CT-Dx layout.

Cohorts are tiny (64-128 px, a handful of slices) and shared per module where a test
only reads them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from conftest import REALDATA

from detect.errors import ConfigError
from detect.io.dicom import read_header, read_hu, read_rgb
from detect.io.slice_order import sort_slices
from detect.io.voc import parse_voc
from detect.recipe import WINDOW_PRESETS, Window
from detect.synth.cohort import DEFAULT_LETTER_MIX, SynthConfig, letter_counts, synthesize
from detect.synth.phantom.anatomy import Grid, Tissue, make_anatomy, make_vessel_tree
from detect.synth.phantom.lesions import make_lesions
from detect.synth.phantom.render import ChestPhantom

CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"
PET_CLASS = "1.2.840.10008.5.1.4.1.1.128"
STUDY_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{4})-NA-(.+)-(\d{5})$")
SERIES_RE = re.compile(r"^(\d+)\.000000-(.+)-(\d{5})$")
FILE_RE = re.compile(r"^1-\d{2,}\.dcm$")


def _doc(out: Path) -> dict[str, Any]:
    return json.loads((out / "synth.json").read_text(encoding="utf-8"))


def _headers(out: Path) -> dict[str, Any]:
    """SOPInstanceUID → SliceHeader of every DICOM file of a cohort."""
    return {h.sop_instance_uid: h for h in map(read_header, out.rglob("*.dcm"))}


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def synth_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 patients: positions 2 (RLE), 3 (signed), 5 (J2K); fused and PET series."""
    out = tmp_path_factory.mktemp("synth_out")
    synthesize(out, SynthConfig(patients=6, slices=10, size=96, seed=3, pet=True))
    return out


@pytest.fixture(scope="module")
def synth_headers(synth_out: Path) -> dict[str, Any]:
    return _headers(synth_out)


# --- layout -------------------------------------------------------------------------------


def test_tcia_layout_names_follow_the_nbia_download(synth_out: Path) -> None:
    root = synth_out / "Lung-PET-CT-Dx"
    patients = sorted(p.name for p in root.iterdir())
    expected = ["A0001", "A0002", "A0003", "B0001", "E0001", "G0001"]
    assert patients == [f"Lung_Dx-{short}" for short in expected]
    double_spaced = 0
    for path in root.rglob("*.dcm"):
        series, study, patient = path.parent, path.parent.parent, path.parent.parent.parent
        assert patient.parent == root and FILE_RE.match(path.name), path
        study_match, series_match = STUDY_RE.match(study.name), SERIES_RE.match(series.name)
        assert study_match and series_match, path
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.PatientID == patient.name
        month, day, year = study_match.group(1, 2, 3)
        assert ds.StudyDate == f"{year}{month}{day}"
        assert study_match.group(5) == ds.StudyInstanceUID[-5:]
        assert series_match.group(3) == ds.SeriesInstanceUID[-5:]
        assert int(series_match.group(1)) == int(ds.SeriesNumber)
        assert "^" not in study.name and "(" not in study.name
        double_spaced += "  " in series.name
    assert double_spaced > 0
    annotation_dirs = {p.name for p in (synth_out / "Annotation").iterdir()}
    assert annotation_dirs == {name.removeprefix("Lung_Dx-") for name in patients}


def test_uid_layout_names_folders_and_files_by_uid(tmp_path: Path) -> None:
    synthesize(tmp_path, SynthConfig(patients=2, slices=5, size=64, layout="uid", pet=True))
    files = list((tmp_path / "Lung-PET-CT-Dx").rglob("*.dcm"))
    assert len(files) == 2 * (5 + 5 + 3)
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert path.name == f"{ds.SOPInstanceUID}.dcm"
        assert path.parent.name == ds.SeriesInstanceUID
        assert path.parent.parent.name == ds.StudyInstanceUID
        assert path.parent.parent.parent.name == ds.PatientID


def test_metadata_csv_lists_every_series_like_the_nbia_manifest(synth_out: Path) -> None:
    with open(synth_out / "metadata.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if REALDATA.is_dir():
        with open(REALDATA / "metadata.csv", newline="", encoding="utf-8") as handle:
            assert list(rows[0]) == next(csv.reader(handle))
    assert len(rows) == 6 * 3  # CT, PET, fused per patient
    for row in rows:
        folder = synth_out / row["File Location"]
        files = sorted(folder.glob("*.dcm"))
        assert len(files) == int(row["Number of Images"])
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        assert row["File Size"] == f"{size_mb:.2f} MB"
        ds = pydicom.dcmread(files[0], stop_before_pixels=True)
        assert (row["Series UID"], row["Modality"]) == (ds.SeriesInstanceUID, ds.Modality)
        assert row["SOP Class UID"] == ds.SOPClassUID


# --- determinism --------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    config = SynthConfig(patients=4, slices=5, size=64, seed=7)
    for name in ("a", "b"):
        synthesize(tmp_path / name, config)
    synthesize(tmp_path / "c", SynthConfig(patients=4, slices=5, size=64, seed=8))
    first = _tree_hash(tmp_path / "a")
    assert first == _tree_hash(tmp_path / "b")
    assert first != _tree_hash(tmp_path / "c")


def test_writing_into_an_existing_cohort_is_refused(tmp_path: Path) -> None:
    synthesize(tmp_path, SynthConfig(patients=1, slices=4, size=32, fused=False))
    with pytest.raises(ConfigError, match="already holds"):
        synthesize(tmp_path, SynthConfig(patients=1, slices=4, size=32))


# --- annotations --------------------------------------------------------------------------


def test_every_xml_parses_points_at_a_slice_and_boxes_a_real_lesion(
    synth_out: Path, synth_headers: dict[str, Any]
) -> None:
    doc = _doc(synth_out)
    xml_files = sorted((synth_out / "Annotation").rglob("*.xml"))
    assert len(xml_files) == doc["counts"]["xml"] > 0
    entries = {e["sop_instance_uid"]: (p, e) for p in doc["patients"] for e in p["annotations"]}
    for xml in xml_files:
        uid = xml.stem
        header = synth_headers[uid]  # KeyError: an XML without its slice
        patient, entry = entries[uid]
        voc = parse_voc(xml)
        assert (voc.width, voc.height) == (header.columns, header.rows)
        assert [o.name for o in voc.objects] == [patient["letter"]] * len(entry["objects"])
        for obj, truth in zip(voc.objects, entry["objects"]):
            x0, y0, x1, y1 = obj.xyxy
            assert 0 <= x0 < x1 <= header.columns and 0 <= y0 < y1 <= header.rows
            assert np.abs(np.subtract(obj.xyxy, truth["box_exact_xyxy"])).max() <= 1
            if header.is_fused:
                patch = read_rgb(header.path)[int(y0) : int(y1), int(x0) : int(x1)]
                assert patch.max() > 30  # lung and the margin are black (0) there
                continue
            patch = read_hu(header.path)[int(y0) : int(y1), int(x0) : int(x1)]
            assert np.percentile(patch, 90) > -650.0  # ground glass or solid, not lung
            if truth["solid_area_px"] >= 4:
                assert patch.max() > -300.0


def test_about_one_ct_slice_in_eight_is_annotated_and_a_third_of_xmls_on_fused(
    tmp_path: Path,
) -> None:
    summary = synthesize(tmp_path, SynthConfig(patients=12, slices=40, size=64, seed=0))
    counts = summary.counts
    assert counts["letters"] == {"A": 8, "B": 1, "E": 1, "G": 2}
    assert 0.08 <= counts["annotated_ct_fraction"] <= 0.2
    assert 0.2 <= counts["xml_fused"] / counts["xml"] <= 0.45
    for record in summary.patients:
        assert record.xml_ct > 0
        for lesion in record.lesions:
            assert set(lesion.annotated_slices) <= set(lesion.slices)


# --- pixels and storage -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("storage", "compression", "syntax", "representation"),
    [
        ("signed", "none", pydicom.uid.ExplicitVRLittleEndian, 1),
        ("unsigned", "rle", pydicom.uid.RLELossless, 0),
        ("unsigned", "j2k", pydicom.uid.JPEG2000Lossless, 0),
        ("signed", "j2k", pydicom.uid.JPEG2000Lossless, 1),
    ],
)
def test_read_hu_is_the_same_whatever_the_storage(
    tmp_path: Path, storage: str, compression: str, syntax: str, representation: int
) -> None:
    def ct_hu(out: Path, storage: str, compression: str) -> dict[str, np.ndarray]:
        config = SynthConfig(
            patients=1, slices=4, size=64, fused=False, storage=storage, compression=compression
        )
        synthesize(out, config)
        result = {}
        for path in out.rglob("*.dcm"):
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            result[ds.SOPInstanceUID] = read_hu(path)
            if out.name == "other":
                assert ds.file_meta.TransferSyntaxUID == syntax
                assert ds.PixelRepresentation == representation
        return result

    reference = ct_hu(tmp_path / "reference", "unsigned", "none")
    other = ct_hu(tmp_path / "other", storage, compression)
    assert sorted(reference) == sorted(other) and len(reference) == 4
    for uid, hu in reference.items():
        assert np.array_equal(hu, other[uid])
        assert np.array_equal(hu, np.rint(hu)) and hu.min() >= -1024 and hu.max() <= 3071


def test_mixed_cohort_has_every_storage_and_syntax(synth_out: Path) -> None:
    patients = {p["patient_id"]: p for p in _doc(synth_out)["patients"]}
    assert patients["A0003"]["transfer_syntax_name"] == "RLE Lossless"
    assert patients["B0001"]["storage"] == "signed"
    assert patients["G0001"]["transfer_syntax"] == pydicom.uid.JPEG2000Lossless
    for patient in patients.values():
        first = synth_out / "Lung-PET-CT-Dx" / patient["slices"][0]["file"]
        ds = pydicom.dcmread(first)
        assert ds.file_meta.TransferSyntaxUID == patient["transfer_syntax"]
        assert ds.PixelRepresentation == (1 if patient["storage"] == "signed" else 0)
        assert float(ds.RescaleIntercept) == (0.0 if patient["storage"] == "signed" else -1024.0)
        assert ds.preamble == b"\0" * 128


def test_phantom_tissues_have_their_hu() -> None:
    rng = np.random.default_rng(11)
    anatomy = replace(make_anatomy(rng), contrast=False)
    phantom = ChestPhantom(anatomy, Grid(128, 360.0), make_vessel_tree(rng, anatomy))
    lesions = make_lesions(rng, "G", anatomy)
    rendered = phantom.render(anatomy.z_at(0.6), lesions, rng, 5.0, labels=True)
    assert rendered.labels is not None
    hu, labels = rendered.hu, rendered.labels

    def mean(tissue: Tissue) -> float:
        return float(hu[labels == tissue].mean())

    assert -900.0 < mean(Tissue.LUNG) < -780.0
    assert 10.0 < mean(Tissue.HEART) < 70.0
    assert 20.0 < mean(Tissue.SOFT) < 70.0
    assert -130.0 < mean(Tissue.FAT) < -40.0
    assert mean(Tissue.AIR) < -950.0
    assert hu[labels == Tissue.BONE].max() > 500.0


def test_chest_looks_like_a_chest_in_the_lung_and_mediastinum_windows(tmp_path: Path) -> None:
    summary = synthesize(tmp_path, SynthConfig(patients=1, slices=60, size=64, fused=False))
    patient = _doc(tmp_path)["patients"][0]
    assert summary.patients[0].ct_slices == 60
    by_t = sorted(patient["slices"], key=lambda s: abs(s["t"] - 0.35))
    hu = read_hu(tmp_path / "Lung-PET-CT-Dx" / by_t[0]["file"])
    lung_window, mediastinum = (Window(n, *WINDOW_PRESETS[n]) for n in ("lung", "mediastinum"))
    for col, row in patient["anatomy"]["lung_centres_px"]:
        region = hu[round(row) - 2 : round(row) + 3, round(col) - 2 : round(col) + 3]
        assert -920.0 < float(np.median(region)) < -760.0
        assert 60 <= np.median(lung_window.apply(region)) <= 140  # grey lung, not black
        assert np.median(mediastinum.apply(region)) == 0  # black lung
    assert float(hu[:4, :4].mean()) < -950.0  # air outside the body
    by_heart = sorted(patient["slices"], key=lambda s: abs(s["t"] - 0.75))
    heart = read_hu(tmp_path / "Lung-PET-CT-Dx" / by_heart[0]["file"])
    col, row = (round(v) for v in patient["anatomy"]["heart_centre_px"])
    expected = (120.0, 200.0) if patient["anatomy"]["contrast"] else (10.0, 70.0)
    value = float(np.median(heart[row - 2 : row + 3, col - 2 : col + 3]))
    assert expected[0] < value < expected[1]
    assert 60 <= mediastinum.apply(np.array([value]))[0] <= 255


# --- letters ------------------------------------------------------------------------------


def test_letter_counts_follow_the_mix_with_one_of_each() -> None:
    assert letter_counts(12, DEFAULT_LETTER_MIX) == {"A": 8, "B": 1, "E": 1, "G": 2}
    assert letter_counts(4, DEFAULT_LETTER_MIX) == {"A": 1, "B": 1, "E": 1, "G": 1}
    assert letter_counts(355, DEFAULT_LETTER_MIX) == dict(DEFAULT_LETTER_MIX)
    assert letter_counts(3, DEFAULT_LETTER_MIX) == {"A": 2, "B": 0, "E": 0, "G": 1}
    assert letter_counts(6, {"B": 1, "G": 2}) == {"A": 0, "B": 2, "E": 0, "G": 4}
    for patients in range(1, 40):
        counts = letter_counts(patients, DEFAULT_LETTER_MIX)
        assert sum(counts.values()) == patients
        assert counts["A"] == max(counts.values())
        if patients >= 4:
            assert min(counts.values()) >= 1


def test_custom_mix_is_respected_on_disk(tmp_path: Path) -> None:
    config = SynthConfig(patients=5, slices=4, size=32, fused=False, letter_mix={"e": 1})
    summary = synthesize(tmp_path, config)
    assert [p.patient_id for p in summary.patients] == [f"E000{i}" for i in range(1, 6)]
    for path in (tmp_path / "Annotation").rglob("*.xml"):
        assert {o.name for o in parse_voc(path).objects} == {"E"}


@pytest.mark.parametrize(
    "options",
    [
        {"patients": 0},
        {"patients": True},
        {"slices": 2},
        {"size": 16},
        {"seed": -1},
        {"layout": "flat"},
        {"compression": "zip"},
        {"storage": "float"},
        {"letter_mix": {"Q": 3}},
        {"letter_mix": {"A": -1}},
        {"letter_mix": {"A": 0, "B": 0}},
    ],
)
def test_bad_options_raise_config_error(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="got"):
        SynthConfig(**options)


# --- series kinds and slice order ---------------------------------------------------------


def test_fused_series_are_rgb_secondary_captures_and_pet_is_pt(
    synth_out: Path, synth_headers: dict[str, Any]
) -> None:
    kinds = {CT_CLASS: 0, SC_CLASS: 0, PET_CLASS: 0}
    for header in synth_headers.values():
        kinds[header.sop_class_uid] += 1
        if header.sop_class_uid == SC_CLASS:
            ds = pydicom.dcmread(header.path)
            assert header.is_fused and header.modality == "CT" and not header.is_ct
            assert (ds.SamplesPerPixel, ds.PhotometricInterpretation) == (3, "RGB")
            assert (ds.PlanarConfiguration, ds.BitsAllocated) == (0, 8)
            assert read_rgb(header.path).shape == (96, 96, 3)
        elif header.sop_class_uid == PET_CLASS:
            ds = pydicom.dcmread(header.path, stop_before_pixels=True)
            assert header.modality == "PT" and ds.Units == "BQML"
            assert (header.rows, header.columns) == (24, 24) and float(ds.RescaleSlope) > 0
        else:
            assert header.is_ct and not header.is_fused
    assert kinds == {CT_CLASS: 60, SC_CLASS: 30, PET_CLASS: 60}


def test_pet_shows_the_lesion_hot(synth_out: Path) -> None:
    doc = _doc(synth_out)
    patient = next(p for p in doc["patients"] if p["letter"] == "E")
    lesion = patient["lesions"][0]
    folder = synth_out / "Lung-PET-CT-Dx" / patient["series"]["pet"]["folder"]
    slices = sort_slices(read_header(p) for p in folder.glob("*.dcm"))
    pet = pydicom.dcmread(slices[round(lesion["centre_slice"])].path)
    bqml = pet.pixel_array * float(pet.RescaleSlope) + float(pet.RescaleIntercept)
    col, row = (round((v + 0.5) / 4 - 0.5) for v in lesion["centre_px"])  # CT px → PET px
    assert bqml[row, col] > 2.0 * np.median(bqml[bqml > 0])


def test_geometric_sort_is_needed_and_recovers_the_order(
    synth_out: Path, synth_headers: dict[str, Any]
) -> None:
    orderings = set()
    for patient in _doc(synth_out)["patients"]:
        orderings.add(patient["ordering"])
        truth = [s["sop_instance_uid"] for s in patient["slices"]]  # ascending z
        ct = [synth_headers[uid] for uid in truth]
        assert [h.sop_instance_uid for h in sort_slices(reversed(ct))] == truth
        numbers = [h.instance_number for h in ct]
        names = [int(h.path.stem.split("-")[1]) for h in ct]
        if patient["ordering"] == "head-first":
            assert numbers == sorted(numbers, reverse=True)
        if patient["ordering"] in ("interleaved", "files-by-uid"):
            assert names not in (sorted(names), sorted(names, reverse=True))
    assert orderings == {"head-first", "feet-first", "interleaved", "files-by-uid"}


def test_progress_is_reported_per_patient(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    config = SynthConfig(patients=3, slices=4, size=32)
    synthesize(tmp_path, config, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]


# --- real data ----------------------------------------------------------------------------


#: Keywords of the real CT files we do not write: references to other images of the
#: archive, and TCIA's coded de-identification steps.
_NOT_WRITTEN = {
    "ReferencedImageSequence",
    "SourceImageSequence",
    "DeidentificationMethodCodeSequence",
}


@pytest.mark.skipif(not REALDATA.is_dir(), reason="real Lung-PET-CT-Dx sample absent")
def test_ct_headers_carry_the_attributes_of_the_real_ct_files(
    synth_out: Path, synth_headers: dict[str, Any]
) -> None:
    real_path = sorted((REALDATA / "Lung-PET-CT-Dx").rglob("*.dcm"))[0]
    real = pydicom.dcmread(real_path, stop_before_pixels=True)
    real_keys = {e.keyword for e in real if e.keyword and not e.tag.is_private}
    for syntax in ("Explicit VR Little Endian", "RLE Lossless"):
        ours_path = next(
            h.path
            for h in synth_headers.values()
            if h.is_ct and pydicom.dcmread(h.path).file_meta.TransferSyntaxUID.name == syntax
        )
        ours = pydicom.dcmread(ours_path, stop_before_pixels=True)
        assert real_keys - _NOT_WRITTEN <= {e.keyword for e in ours}
        real_meta = {e.keyword for e in real.file_meta} - {"SourceApplicationEntityTitle"}
        assert real_meta <= {e.keyword for e in ours.file_meta}
        assert ours.ImageOrientationPatient == [1, 0, 0, 0, 1, 0]
        assert 0.0 < float(ours.PixelSpacing[0]) * 96 < 450.0  # a chest-sized field of view
