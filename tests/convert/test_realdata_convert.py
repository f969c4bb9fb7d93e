"""Three real patients of three scanners (A0002 Siemens, B0021 and E0003 GE), reached
through a linked DICOM root whose patient folders are links too: every box of the
dataset equals the box of its original XML."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from support.realdata import PATIENTS, real_patient

from detect.boxes import clip_xyxy, xyxy_to_coco
from detect.convert import convert
from detect.convert.config import ConvertConfig
from detect.io.voc import parse_voc

#: Annotated slices (= XML files) per patient, from each sample's README.
XML_COUNTS = {"A0002": 18, "B0021": 64, "E0003": 79}


@pytest.fixture(scope="module")
def real_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    folders = {short: real_patient(short) for short in PATIENTS}
    root = tmp_path_factory.mktemp("real")
    dicom, annotations = root / "elsewhere" / "dicom", root / "ann"
    dicom.mkdir(parents=True)
    annotations.mkdir()
    for folder in folders.values():
        for patient in (folder / "Lung-PET-CT-Dx").iterdir():
            (dicom / patient.name).symlink_to(patient, target_is_directory=True)
        for patient in (folder / "Annotation").iterdir():
            (annotations / patient.name).symlink_to(patient, target_is_directory=True)
    (root / "dicom-root").symlink_to(dicom, target_is_directory=True)
    out = root / "ds"
    convert(ConvertConfig(root / "dicom-root", annotations, out, workers=2))
    return out, folders


def _coco_by_sop(out: Path) -> dict[str, tuple[dict, list[list[float]]]]:
    found = {}
    for split in ("train", "val", "test"):
        coco = json.loads((out / "coco" / f"{split}.json").read_text())
        for image in coco["images"]:
            boxes = [a["bbox"] for a in coco["annotations"] if a["image_id"] == image["id"]]
            found[image["sop_instance_uid"]] = (image, boxes)
    return found


def test_every_box_equals_its_xml(real_dataset):
    out, folders = real_dataset
    converted = _coco_by_sop(out)
    compared = 0
    for short, folder in folders.items():
        xmls = sorted((folder / "Annotation" / short).glob("*.xml"))
        assert len(xmls) == XML_COUNTS[short]
        for xml in xmls:
            image, boxes = converted[xml.stem]
            assert image["patient_id"] == short and image["histology"] == short[0]
            expected = [
                xyxy_to_coco(clip_xyxy(obj.xyxy, image["width"], image["height"]).xyxy)
                for obj in parse_voc(xml).objects
            ]
            assert len(boxes) == len(expected), xml.name
            for got, want in zip(sorted(boxes), sorted(expected)):
                assert got == pytest.approx(want, abs=1e-3), xml.name
                compared += 1
    assert len(converted) == sum(XML_COUNTS.values()) == 161
    assert compared == 161


def test_the_real_dataset_is_whole_and_accounted_for(real_dataset):
    out, _ = real_dataset
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["issues"] == []
    assert manifest["accounting"]["unaccounted"] == []
    assert manifest["accounting"]["xml_converted"] == 161
    assert {p: v["letter"] for p, v in manifest["patients"].items()} == {
        "A0002": "A", "B0021": "B", "E0003": "E"
    }
    for image, _ in _coco_by_sop(out).values():
        png = cv2.imread(str(out / image["file_name"]), cv2.IMREAD_UNCHANGED)
        assert png is not None and png.shape == (512, 512, 3)
        assert Path(image["source_dicom"]).parts[0] in {"Lung_Dx-A0002", "Lung_Dx-B0021",
                                                        "Lung_Dx-E0003"}
