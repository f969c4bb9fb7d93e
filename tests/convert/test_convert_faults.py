"""Every fault kind of docs/contracts.md, contract 2, planted in a copy of the phantom cohort."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from detect.cli import app
from detect.convert import convert
from detect.convert.config import ConvertConfig
from detect.convert.index import build_index
from detect.histology import patient_letter, short_patient_id
from detect.io.voc import VocObject, voc_xml_bytes


def _voc(name: str, box=(10, 10, 30, 30), size=96) -> bytes:
    return voc_xml_bytes([VocObject(name, tuple(float(v) for v in box))], size, size)


@pytest.fixture
def planted(cohort_copy, tmp_path):
    """Plant one input of each kind; returns roots and {relative xml or dicom path: kind}."""
    dicom_root, ann_root = cohort_copy
    index = build_index(dicom_root)
    annotated = {p.stem for p in ann_root.rglob("*.xml")}
    free = sorted(
        (h for h in index.by_sop.values() if h.is_ct and h.sop_instance_uid not in annotated),
        key=lambda h: h.sop_instance_uid,
    )
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    other = {"A": "G", "B": "A", "E": "A", "G": "A"}
    expected: dict[str, tuple[str, str]] = {}

    def plant(header, kind, content: bytes, action="skipped") -> str:
        folder = ann_root / short_patient_id(header.patient_id)
        folder.mkdir(exist_ok=True)
        path = folder / f"{header.sop_instance_uid}.xml"
        path.write_bytes(content)
        rel = str(path.relative_to(ann_root))
        expected[rel] = (kind, action)
        return rel

    letter = patient_letter(free[3].patient_id)
    plant(free[0], "malformed-xml", b"<annotation><object><name>A</name>")
    plant(
        free[1],
        "forbidden-entity",
        (
            f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file://{secret}">]>'
            f"<annotation><object><name>&x;</name></object></annotation>"
        ).encode(),
    )
    plant(free[2], "unknown-label", _voc("Q"))
    plant(free[3], "label-mismatch", _voc(other[letter]), action="converted")
    plant(
        free[4], "label-case", _voc(patient_letter(free[4].patient_id).lower()), action="converted"
    )
    plant(free[5], "empty-annotation", voc_xml_bytes([], 96, 96))
    plant(
        free[6],
        "box-clipped",
        _voc(patient_letter(free[6].patient_id), (80, 80, 120, 90)),
        action="converted",
    )
    plant(free[7], "box-invalid", _voc(patient_letter(free[7].patient_id), (40, 40, 40, 60)))
    plant(free[8], "unknown-label", _voc("A0192"))
    broken = plant(free[9], "unreadable-dicom", _voc(patient_letter(free[9].patient_id)))
    raw = free[9].path.read_bytes()
    free[9].path.write_bytes(raw[: len(raw) - 3000])  # pixel data cut short
    orphan = ann_root / "A9999" / "1.2.3.4.5.6.7.8.9.xml"
    orphan.parent.mkdir()
    orphan.write_bytes(_voc("A"))
    expected[str(orphan.relative_to(ann_root))] = ("missing-dicom", "skipped")
    (dicom_root / "README.txt").write_text("not an image")
    (dicom_root / "junk.dcm").write_bytes(b"\x00" * 50)
    ds = pydicom.dcmread(free[10].path)
    del ds.Rows
    del ds.PixelData
    ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["norows"])
    ds.save_as(dicom_root / "norows.dcm")
    dicom_faults = {
        "README.txt": "not-dicom",
        "junk.dcm": "not-dicom",
        "norows.dcm": "unsupported-dicom",
    }
    return dicom_root, ann_root, expected, dicom_faults, broken


def test_each_fault_kind_is_reported(planted, tmp_path):
    dicom_root, ann_root, expected, dicom_faults, broken = planted
    out = tmp_path / "ds"
    convert(ConvertConfig(dicom_root, ann_root, out, workers=2))
    manifest = json.loads((out / "dataset.json").read_text())
    issues = manifest["issues"]
    by_path: dict[str, list[dict]] = {}
    for issue in issues:
        by_path.setdefault(issue["path"], []).append(issue)
    for rel, (kind, action) in expected.items():
        found = [(i["kind"], i["action"]) for i in by_path.get(rel, [])]
        assert (kind, action) in found, (rel, kind, found)
    for rel, kind in dicom_faults.items():
        assert [(i["kind"], i["root"]) for i in by_path[rel]] == [(kind, "dicom")]
    assert "SECRET" not in json.dumps(issues)
    assert manifest["accounting"]["unaccounted"] == []
    assert {i["kind"] for i in issues} >= {
        "malformed-xml",
        "forbidden-entity",
        "unknown-label",
        "label-mismatch",
        "label-case",
        "missing-dicom",
        "unreadable-dicom",
        "not-dicom",
        "unsupported-dicom",
        "fused-image",
        "empty-annotation",
        "box-clipped",
        "box-invalid",
    }
    assert manifest["issue_counts"]["unknown-label"] == 2
    converted = {}
    for split in ("train", "val", "test"):
        coco = json.loads((out / "coco" / f"{split}.json").read_text())
        for image in coco["images"]:
            anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
            converted[image["source_xml"]] = (image, anns)
    for rel, (_kind, action) in expected.items():
        assert (rel in converted) == (action == "converted"), rel
    mismatch = next(r for r, (k, _) in expected.items() if k == "label-mismatch")
    image, anns = converted[mismatch]
    assert [a["histology"] for a in anns] == [image["histology"]]  # the patient's letter
    clipped = next(r for r, (k, _) in expected.items() if k == "box-clipped")
    assert converted[clipped][1][0]["bbox"] == [80.0, 80.0, 16.0, 10.0]
    assert broken not in converted


def test_cli_reports_bad_inputs_in_one_line(tmp_path, cohort):
    runner = CliRunner()
    missing = runner.invoke(app, ["convert", str(tmp_path / "nope"), str(tmp_path), "out"])
    assert missing.exit_code == 1
    assert "DICOM root is not a folder" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    bad = runner.invoke(
        app,
        [
            "convert",
            str(cohort.dicom_root),
            str(cohort.annotation_root),
            str(tmp_path / "o"),
            "--channels",
            "lung,foo,wide",
        ],
    )
    assert bad.exit_code == 1 and "unknown window 'foo'" in bad.output
    bad_split = runner.invoke(
        app,
        [
            "convert",
            str(cohort.dicom_root),
            str(cohort.annotation_root),
            str(tmp_path / "o"),
            "--split",
            "0.5,0.5",
        ],
    )
    assert bad_split.exit_code == 1 and "--split" in bad_split.output
    inside = runner.invoke(
        app,
        [
            "convert",
            str(cohort.dicom_root),
            str(cohort.annotation_root),
            str(cohort.dicom_root / "out"),
        ],
    )
    assert inside.exit_code == 1 and "must not be inside" in inside.output


def test_convert_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, detect.cli, detect.convert, detect.synth.cohort; "
        "print(sorted(m for m in ('torch', 'ultralytics', 'torchvision') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_uid_named_layout_converts_the_same(tmp_path):
    from detect.synth.cohort import SynthConfig, synthesize

    results = {}
    for layout in ("tcia", "uid"):
        cohort = synthesize(
            tmp_path / layout,
            SynthConfig(patients=4, slices=10, size=64, seed=5, fused=False, layout=layout),
        )
        out = tmp_path / f"ds-{layout}"
        convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, out, workers=1))
        coco = json.loads((out / "coco" / "train.json").read_text())
        results[layout] = sorted((i["sop_instance_uid"], i["slice_index"]) for i in coco["images"])
        folders = {p.parent.name for p in Path(cohort.dicom_root).rglob("*.dcm")}
        assert folders
    assert results["tcia"] == results["uid"] and results["tcia"]
