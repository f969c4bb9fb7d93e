"""convert with DICOM SR annotations (IDC's form) on the phantom: from SR alone, SR beside
XML, SR inside the DICOM root; every SR fault accounted for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.idc_sr import (
    assert_same_boxes,
    boxes_by_slice,
    ct_series,
    groups,
    idc_sr,
    many_items_sr,
    region,
    save,
    sr_header_bytes,
    write_idc_srs_for,
)
from typer.testing import CliRunner

from detect.cli import app
from detect.convert import convert
from detect.convert.config import ConvertConfig
from detect.convert.index import build_index
from detect.histology import patient_letter
from detect.io.idc_sr import VocBox, build_idc_sr


@pytest.fixture(scope="module")
def sr_root(cohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The phantom's XML boxes as IDC-style SRs (one per annotated series)."""
    out = tmp_path_factory.mktemp("idc-sr")
    write_idc_srs_for(cohort.dicom_root, cohort.annotation_root, out)
    return out


def _manifest(root: Path) -> dict:
    return json.loads((root / "dataset.json").read_text())


def _fused_xml_boxes(manifest: dict, cohort) -> int:
    from detect.io.voc import parse_voc

    return sum(len(parse_voc(cohort.annotation_root / i["path"]).objects)
               for i in manifest["issues"] if i["kind"] == "fused-image")


def test_phantom_from_sr_equals_from_xml(cohort, dataset, sr_root, tmp_path):
    out = tmp_path / "from-sr"
    result = CliRunner().invoke(
        app, ["convert", str(cohort.dicom_root), str(sr_root), str(out), "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    from_xml, from_sr = _manifest(dataset), _manifest(out)
    assert from_sr["splits"] == from_xml["splits"]
    assert from_sr["counts"] == from_xml["counts"]
    assert assert_same_boxes(boxes_by_slice(out), boxes_by_slice(dataset)) > 30
    for sop, image in boxes_by_slice(out).items():
        assert image["source_xml"] is None and len(image["source_sr"]) == 1, sop
        assert (out / image["file_name"]).read_bytes() == (
            dataset / image["file_name"]).read_bytes()
    # the same slices are left out for the same reason: one issue per XML, one per SR box
    assert set(from_sr["issue_counts"]) == set(from_xml["issue_counts"]) == {"fused-image"}
    assert from_sr["issue_counts"]["fused-image"] == _fused_xml_boxes(from_xml, cohort)
    accounting = from_sr["accounting"]
    assert accounting["unaccounted"] == [] and accounting["xml_files"] == 0
    assert accounting["sr_files"] == len(list(sr_root.rglob("*.dcm")))


def test_xml_and_sr_together_count_each_box_once(cohort, dataset, sr_root, tmp_path):
    both = tmp_path / "both"
    shutil.copytree(cohort.annotation_root, both)
    shutil.copytree(sr_root, both / "from-idc")
    out = tmp_path / "out"
    convert(ConvertConfig(cohort.dicom_root, both, out, workers=2))
    assert_same_boxes(boxes_by_slice(out), boxes_by_slice(dataset))
    for image in boxes_by_slice(out).values():
        assert image["source_xml"] and len(image["source_sr"]) == 1
    manifest = _manifest(out)
    assert "sources-differ" not in manifest["issue_counts"]
    assert manifest["accounting"]["unaccounted"] == []


def test_sr_beside_the_ct_in_the_dicom_root(cohort_copy, dataset, sr_root, tmp_path):
    dicom_root, ann_root = cohort_copy
    for path in sr_root.rglob("*.dcm"):  # as IDC lays out a download: SR series in the study
        target = dicom_root / path.parent.name / "sr" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    out = tmp_path / "beside"
    convert(ConvertConfig(dicom_root, dicom_root, out, workers=2))
    assert_same_boxes(boxes_by_slice(out), boxes_by_slice(dataset))
    manifest = _manifest(out)
    assert "unsupported-dicom" not in manifest["issue_counts"]  # the SRs are annotations
    # read from an XML root, the SRs in the DICOM tree are reported, with what to do
    out = tmp_path / "xml"
    convert(ConvertConfig(dicom_root, ann_root, out, workers=2))
    reported = [i for i in _manifest(out)["issues"] if i["kind"] == "unsupported-dicom"]
    assert len(reported) == len(list(sr_root.rglob("*.dcm")))
    assert all("DICOM SR" in i["detail"] and i["root"] == "dicom" for i in reported)


@pytest.fixture
def planted(cohort_copy, tmp_path):
    """One SR of each fault kind in the annotation root; returns roots, expected
    {(relative path, kind, action)}, and the slices expected in the dataset or not."""
    dicom_root, ann_root = cohort_copy
    index = build_index(dicom_root)
    annotated = {p.stem for p in ann_root.rglob("*.xml")}
    by_series: dict[str, list] = {}
    for header in index.by_sop.values():
        if header.is_ct:
            by_series.setdefault(header.series_instance_uid, []).append(header)
    series_uid = sorted(by_series)[0]
    series = sorted(by_series[series_uid], key=lambda h: h.sop_instance_uid)
    files = [h.path for h in index.series()[series_uid]]
    free = [h for h in series if h.sop_instance_uid not in annotated]
    boxed = next(h for h in series if h.sop_instance_uid in annotated)
    letter = patient_letter(series[0].patient_id)
    other = "G" if letter != "G" else "A"
    folder = ann_root / "sr"
    expected: set[tuple[str, str, str]] = set()

    def plant(name: str, kind: str, action: str, boxes: list[VocBox], edit=None) -> None:
        ds = build_idc_sr(files, boxes)
        if edit:
            edit(ds)
        save(ds, folder / name)
        expected.add((f"sr/{name}", kind, action))

    def diamond(ds) -> None:
        region(groups(ds)[0]).GraphicData = [20.0, 10, 30, 20, 20, 30, 10, 20, 20, 10]

    box = (10.0, 10.0, 30.0, 30.0)
    plant("unknown.dcm", "unknown-label", "skipped", [VocBox(free[0].sop_instance_uid, "Q", box)])
    plant("mismatch.dcm", "label-mismatch", "converted",
          [VocBox(free[1].sop_instance_uid, other, box)])
    # a diamond and a good box on one slice: the diamond is dropped, the slice converted
    plant("diamond.dcm", "box-invalid", "object-dropped",
          [VocBox(free[2].sop_instance_uid, letter, box),
           VocBox(free[2].sop_instance_uid, letter, (40.0, 40.0, 50.0, 50.0))], diamond)
    plant("differs.dcm", "sources-differ", "converted",
          [VocBox(boxed.sop_instance_uid, letter, (1.0, 2.0, 5.0, 6.0))])
    elsewhere = ct_series(tmp_path / "elsewhere", count=2)
    save(idc_sr(elsewhere, [(0, "A", box)]), folder / "missing.dcm")
    expected.add(("sr/missing.dcm", "missing-dicom", "skipped"))
    empty = idc_sr(elsewhere, [(0, "A", box)])
    for item in empty.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue == "126010":
            item.ContentSequence = []
    save(empty, folder / "empty.dcm")
    expected.add(("sr/empty.dcm", "empty-annotation", "skipped"))
    many_items_sr(folder / "hostile.dcm", 200_000)
    expected.add(("sr/hostile.dcm", "unreadable-sr", "skipped"))
    (folder / "no-content.dcm").write_bytes(sr_header_bytes())
    expected.add(("sr/no-content.dcm", "unreadable-sr", "skipped"))
    slices = {"skipped": free[0].sop_instance_uid, "converted": [
        free[1].sop_instance_uid, free[2].sop_instance_uid, boxed.sop_instance_uid]}
    return dicom_root, ann_root, expected, slices, letter


def test_each_sr_fault_is_accounted_for(planted, tmp_path):
    dicom_root, ann_root, expected, slices, letter = planted
    out = tmp_path / "out"
    convert(ConvertConfig(dicom_root, ann_root, out))
    manifest = _manifest(out)
    found = {(i["path"], i["kind"], i["action"]) for i in manifest["issues"]}
    assert expected <= found, expected - found
    sr_issues = {i["path"] for i in manifest["issues"] if i["path"].startswith("sr/")}
    assert sr_issues == {path for path, _, _ in expected}  # nothing else, nothing silent
    assert manifest["accounting"]["unaccounted"] == []
    assert manifest["accounting"]["sr_files"] == 8
    images = boxes_by_slice(out)
    assert slices["skipped"] not in images
    mismatch, diamond, differs = (images[s] for s in slices["converted"])
    assert [letter for _, letter in mismatch["boxes"]] == [letter]
    assert mismatch["source_sr"] == ["sr/mismatch.dcm"] and mismatch["source_xml"] is None
    assert diamond["boxes"][0][0] == [40.0, 40.0, 10.0, 10.0] and len(diamond["boxes"]) == 1
    assert [1.0, 2.0, 4.0, 4.0] in [b for b, _ in differs["boxes"]]  # both kept
    assert len(differs["boxes"]) >= 2 and differs["source_xml"]
    hostile = next(i for i in manifest["issues"] if i["path"] == "sr/hostile.dcm")
    assert "200000 sequence items" in hostile["detail"]
