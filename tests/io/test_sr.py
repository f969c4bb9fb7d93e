"""detect.io.sr: boxes from a TID 1500 SR, and every way a hostile or odd SR is refused or
accounted for (hand-made SRs from tests/support/idc_sr.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian
from support.idc_sr import (
    ct_series,
    finding,
    groups,
    idc_sr,
    many_items_sr,
    region,
    save,
    sop_of,
    sr_header_bytes,
)

import detect.io.sr as sr_module
from detect.errors import AnnotationError
from detect.histology import FINDING_CODES, finding_letter
from detect.io.sr import read_sr_boxes
from detect.io.sr_file import MAX_SR_BYTES, is_sr_file

BOXES = [(0, "A", (10, 12, 30, 40)), (2, "A", (5, 6, 20, 21)), (1, "a", (40, 41, 60, 62))]


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return ct_series(tmp_path_factory.mktemp("ct"), count=3)


def _refused(path: Path, words: str) -> str:
    with pytest.raises(AnnotationError) as caught:
        read_sr_boxes(path)
    assert caught.value.kind == "unreadable-sr"
    assert words in caught.value.detail
    return caught.value.detail


def test_reads_each_box_with_its_slice_letter_and_tracking(series, tmp_path):
    path = save(idc_sr(series, BOXES), tmp_path / "any-name.bin")
    read = read_sr_boxes(path)
    assert read.problems == ()
    assert read.patient_id == "Lung_Dx-A0001"
    by_sop = {b.sop_instance_uid: b for b in read.boxes}
    for index, _, xyxy in BOXES:
        box = by_sop[sop_of(series[index])]
        np.testing.assert_allclose(box.xyxy, xyxy, atol=1e-4)
        assert box.letter == "A" and "1187332001" in box.finding
        assert len(box.tracking_uid) > 10
    # IDC numbers the groups 1..N from the lowest slice up (z = -5 x instance number)
    order = [by_sop[sop_of(series[i])].tracking_id for i in (2, 1, 0)]
    assert order == ["1", "2", "3"]


def test_other_histologies_aliases_and_neoplasm(series, tmp_path):
    ds = idc_sr(series, [(0, "B", (1, 1, 9, 9)), (1, "G", (1, 1, 9, 9)), (2, "Q", (1, 1, 9, 9))])
    read = read_sr_boxes(save(ds, tmp_path / "sr.dcm"))
    letters = {b.sop_instance_uid: (b.letter, b.finding) for b in read.boxes}
    assert letters[sop_of(series[0])][0] == "B"
    assert letters[sop_of(series[1])][0] == "G"
    assert letters[sop_of(series[2])] == (None, "SCT 108369006 (Neoplasm)")
    for group, (scheme, value) in zip(groups(ds), [("SCT", "35917007"), ("SRT", "M-80123"),
                                                  ("SCT", "254632001")]):
        code = finding(group)
        code.CodingSchemeDesignator, code.CodeValue = scheme, value
    read = read_sr_boxes(save(ds, tmp_path / "aliases.dcm"))
    assert sorted(b.letter for b in read.boxes) == ["A", "B", "E"]


def test_codes_are_one_table_for_writer_and_reader():
    from detect.predict.sr import HISTOLOGY_CONCEPTS  # detect's own SR writer

    for letter, term in FINDING_CODES.items():
        assert finding_letter(term.scheme, term.value) == letter
        assert (HISTOLOGY_CONCEPTS[letter].scheme_designator,
                HISTOLOGY_CONCEPTS[letter].value) == term.key
    assert finding_letter("SCT", "108369006") is None


def test_reads_detects_own_predict_sr(series, tmp_path):
    from detect.io.dicom import read_header
    from detect.predict.sources import Series
    from detect.predict.sr import SrModel, build_series_sr
    from detect.predict.writers import SliceResult
    from detect.predictions import Prediction

    headers = [read_header(p) for p in series[:2]]
    results = []
    for k, (header, histology) in enumerate(zip(headers, [None, {"A": .1, "B": .7, "E": .1,
                                                                 "G": .1}])):
        prediction = Prediction(
            sop_instance_uid=header.sop_instance_uid,
            series_instance_uid=header.series_instance_uid, patient_id="A0001",
            xyxy=(1.5, 2.0, 10.25, 20.0), score=0.9, label="A", category_id=1,
            histology=histology)
        results.append(SliceResult("A0001", header.series_instance_uid,
                                   header.sop_instance_uid, k, k + 1, str(header.path), 64, 64,
                                   [prediction]))
    one = Series(headers[0].series_instance_uid, "A0001", "", tuple(headers))
    path = save(build_series_sr(one, results, SrModel("yolov8", "run", 0.25)), tmp_path / "p")
    read = read_sr_boxes(path)
    assert read.problems == ()
    assert [(b.sop_instance_uid, b.letter, b.tracking_id) for b in read.boxes] == [
        (headers[0].sop_instance_uid, "A", "detection 1"),
        (headers[1].sop_instance_uid, "B", "detection 2")]
    assert all(b.xyxy == pytest.approx((1.5, 2.0, 10.25, 20.0)) for b in read.boxes)


def test_open_four_corner_polyline_is_a_box(series, tmp_path):
    ds = idc_sr(series, [(0, "A", (10, 12, 30, 40))])
    region(groups(ds)[0]).GraphicData = [10.0, 12.0, 30.0, 12.0, 30.0, 40.0, 10.0, 40.0]
    (box,) = read_sr_boxes(save(ds, tmp_path / "sr.dcm")).boxes
    assert box.xyxy == (10.0, 12.0, 30.0, 40.0)


@pytest.mark.parametrize(
    ("breaks", "words"),
    [
        ("diamond", "not the corners of an axis-aligned rectangle"),
        ("ellipse", "graphic type 'ELLIPSE'"),
        ("nan", "non-finite"),
        ("odd", "not (column, row) pairs"),
        ("3d", "3D region"),
        ("no-reference", "references no image"),
        ("long-uid", "references no image"),
        ("many-points", "over the 4096 limit"),
        ("two-regions", "2 image regions"),
    ],
)
def test_a_group_that_is_not_a_pixel_box_is_a_problem(series, tmp_path, breaks, words):
    # groups go by z: slice 1 (z -10 mm) is group 1, slice 0 (z -5 mm) group 2
    ds = idc_sr(series, [(1, "A", (10, 12, 30, 40)), (0, "A", (1, 2, 3, 4))])
    bad = region(groups(ds)[0])
    if breaks == "diamond":
        bad.GraphicData = [20.0, 12.0, 30.0, 26.0, 20.0, 40.0, 10.0, 26.0, 20.0, 12.0]
    elif breaks == "ellipse":
        bad.GraphicType = "ELLIPSE"
    elif breaks == "nan":
        bad.GraphicData = [10.0, 12.0, float("nan"), 12.0, 30.0, 40.0, 10.0, 40.0, 10.0, 12.0]
    elif breaks == "odd":
        bad.GraphicData = [10.0, 12.0, 30.0]
    elif breaks == "3d":
        bad.ValueType = "SCOORD3D"
    elif breaks == "no-reference":
        del bad.ContentSequence
    elif breaks == "long-uid":
        bad.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID = "1." * 40
    elif breaks == "many-points":
        bad.GraphicData = [1.0] * 5000
    elif breaks == "two-regions":
        groups(ds)[0].ContentSequence.append(region(groups(ds)[1]))
    read = read_sr_boxes(save(ds, tmp_path / "sr.dcm"))
    assert [b.sop_instance_uid for b in read.boxes] == [sop_of(series[0])]
    (problem,) = read.problems
    assert problem.kind == "box-invalid" and words in problem.detail
    assert problem.detail.startswith("measurement group 1 (tracking id '1'): ")
    if breaks not in ("3d", "no-reference", "long-uid", "two-regions"):
        assert problem.sop_instance_uid == sop_of(series[1])


def test_missing_finding_type_reads_as_no_letter(series, tmp_path):
    ds = idc_sr(series, [(0, "A", (10, 12, 30, 40))])
    group = groups(ds)[0]
    group.ContentSequence = [i for i in group.ContentSequence
                             if i.ConceptNameCodeSequence[0].CodeValue != "121071"]
    (box,) = read_sr_boxes(save(ds, tmp_path / "sr.dcm")).boxes
    assert box.letter is None and box.finding == "none"


def test_too_big_file_is_refused_unread(tmp_path):
    path = tmp_path / "big.dcm"
    with open(path, "wb") as handle:
        handle.write(sr_header_bytes())
        handle.truncate(MAX_SR_BYTES + 1)
    assert is_sr_file(path)  # it says it is one...
    _refused(path, "byte limit")  # ...but is not read


def test_a_million_groups_are_refused_before_parsing(tmp_path):
    detail = _refused(many_items_sr(tmp_path / "hostile.dcm", 1_000_000), "sequence items")
    assert "1000000 sequence items" in detail


def test_more_groups_than_the_limit_are_refused(series, tmp_path, monkeypatch):
    monkeypatch.setattr(sr_module, "MAX_GROUPS", 2)
    path = save(idc_sr(series, BOXES), tmp_path / "sr.dcm")
    _refused(path, "3 measurement groups, over the 2 limit")


def test_deflated_sr_is_refused(tmp_path):
    path = tmp_path / "deflated.dcm"
    path.write_bytes(sr_header_bytes(transfer_syntax=DeflatedExplicitVRLittleEndian))
    _refused(path, "deflated")


def test_sr_that_is_not_a_measurement_report_is_refused(series, tmp_path):
    ds = idc_sr(series, BOXES)
    del ds.ContentTemplateSequence
    ds.ConceptNameCodeSequence[0].CodeValue = "18748-4"  # LN Diagnostic imaging report
    _refused(save(ds, tmp_path / "sr.dcm"), "not a TID 1500 measurement report")


@pytest.mark.parametrize("keep", [0.05, 0.3, 0.6, 0.99])
def test_truncated_sr_is_one_clear_refusal_not_fewer_boxes(series, tmp_path, keep):
    whole = save(idc_sr(series, BOXES), tmp_path / "whole.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(whole[: int(len(whole) * keep)])
    with pytest.raises(AnnotationError) as caught:
        read_sr_boxes(path)
    assert caught.value.kind == "unreadable-sr"


def test_told_apart_by_content_not_name(series, tmp_path):
    sr = save(idc_sr(series, BOXES), tmp_path / "notes.txt")
    junk = tmp_path / "scan.dcm"
    junk.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 50)
    text = tmp_path / "readme.dcm"
    text.write_text("hello")
    assert is_sr_file(sr)
    assert not any(is_sr_file(p) for p in (series[0], junk, text, tmp_path / "absent.dcm"))
    _refused(series[0], "not a structured report")
    _refused(text, "not a DICOM file")


def test_sr_without_groups_reads_as_empty(series, tmp_path):
    ds = idc_sr(series, BOXES)
    for item in ds.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue == "126010":
            item.ContentSequence = []
    read = read_sr_boxes(save(ds, tmp_path / "sr.dcm"))
    assert read.boxes == () and read.problems == ()
