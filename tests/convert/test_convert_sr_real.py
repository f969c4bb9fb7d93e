"""The three real patients (A0002 Siemens, B0021 GE, E0003 GE): their VOC boxes made into
IDC-style SRs hold the XML's boxes, and convert to the same images and boxes as the XML,
from an SR annotation root and from SR files beside the CT in the DICOM root (A0002 in the
default run; all three, 161 slices, under -m slow: about a minute of PNG writing). Skips
without ../shared/realdata."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from support.idc_sr import assert_same_boxes, boxes_by_slice, write_idc_srs_for
from support.realdata import PATIENTS, real_patient

from detect.convert import convert
from detect.convert.config import ConvertConfig
from detect.io.sr import read_sr_boxes
from detect.io.voc import parse_voc

XML_FILES = {"A0002": 18, "B0021": 64, "E0003": 79}


def _link_tree(source: Path, target: Path) -> None:
    """``source`` mirrored under ``target`` by hard links (copies where linking fails)."""
    for folder, _, files in os.walk(source):
        here = target / Path(folder).relative_to(source)
        here.mkdir(parents=True, exist_ok=True)
        for name in files:
            try:
                os.link(Path(folder) / name, here / name)
            except OSError:
                shutil.copy2(Path(folder) / name, here / name)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three patients in one tree (hard links), their XMLs, and their IDC-style SRs."""
    folders = [real_patient(p) for p in PATIENTS]
    base = tmp_path_factory.mktemp("real-sr")
    dicom, ann, sr = base / "dicom", base / "ann", base / "sr"
    for folder in folders:
        _link_tree(folder / "Lung-PET-CT-Dx", dicom)
        _link_tree(folder / "Annotation", ann)
    write_idc_srs_for(dicom, ann, sr)
    return {"dicom": dicom, "ann": ann, "sr": sr, "base": base}


def _forms(real: dict[str, Path], patients: tuple[str, ...], base: Path) -> dict[str, Path]:
    """``patients`` converted from their XML root, from their SR root, and from SR files
    beside the CT with the DICOM root as annotation root."""
    dicom, ann, sr = base / "dicom", base / "ann", base / "sr"
    for patient in patients:
        _link_tree(real["dicom"] / f"Lung_Dx-{patient}", dicom / f"Lung_Dx-{patient}")
        _link_tree(real["ann"] / patient, ann / patient)
        _link_tree(real["sr"] / f"Lung_Dx-{patient}", sr / f"Lung_Dx-{patient}")
    out = {"from-xml": base / "from-xml", "from-sr": base / "from-sr", "beside": base / "beside"}
    convert(ConvertConfig(dicom, ann, out["from-xml"], workers=2))
    convert(ConvertConfig(dicom, sr, out["from-sr"], workers=2))
    for path in sr.rglob("*.dcm"):  # IDC's layout: the SR series beside the CT
        target = dicom / path.parent.name / "sr" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    convert(ConvertConfig(dicom, dicom, out["beside"], workers=2))
    return out


def _manifest(root: Path) -> dict:
    return json.loads((root / "dataset.json").read_text())


def test_sr_boxes_are_the_xml_boxes_box_by_box(real):
    checked = 0
    for path in sorted(real["sr"].rglob("*.dcm")):
        read = read_sr_boxes(path)
        assert read.problems == ()
        for box in read.boxes:
            (xml,) = real["ann"].rglob(f"{box.sop_instance_uid}.xml")
            (obj,) = parse_voc(xml).objects
            np.testing.assert_allclose(box.xyxy, obj.xyxy, atol=1e-4)
            assert box.letter == obj.name == xml.parent.name[0]
            checked += 1
    assert checked == sum(XML_FILES.values())


def _check_forms(out: dict[str, Path], patients: tuple[str, ...]) -> None:
    from_xml = _manifest(out["from-xml"])
    want = boxes_by_slice(out["from-xml"])
    assert len(want) == sum(XML_FILES[p] for p in patients)
    for form in ("from-sr", "beside"):
        other = _manifest(out[form])
        assert assert_same_boxes(boxes_by_slice(out[form]), want) == len(want)
        assert other["counts"] == from_xml["counts"] and other["splits"] == from_xml["splits"]
        assert {p: v["images"] for p, v in other["patients"].items()} == {
            p: XML_FILES[p] for p in patients}
        assert other["issues"] == from_xml["issues"] == []
        assert other["accounting"]["sr_files"] == 2 * len(patients)  # 2 CT series each
        assert other["accounting"]["unaccounted"] == []
        for sop, image in boxes_by_slice(out[form]).items():
            png = out[form] / image["file_name"]
            assert png.read_bytes() == (out["from-xml"] / image["file_name"]).read_bytes(), sop


def test_a0002_sr_forms_convert_to_the_xml_dataset(real, tmp_path):
    _check_forms(_forms(real, ("A0002",), tmp_path), ("A0002",))


@pytest.mark.slow
def test_all_three_patients_sr_forms_convert_to_the_xml_dataset(real, tmp_path):
    _check_forms(_forms(real, PATIENTS, tmp_path), PATIENTS)
