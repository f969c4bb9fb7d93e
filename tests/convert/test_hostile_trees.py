"""convert on linked trees (data on another disk), loops, and roots with nothing to use."""

from __future__ import annotations

import json
from pathlib import Path

from support.hostile import Cohort, one_line_error, run_cli


def _linked(cohort: Cohort, root: Path) -> Cohort:
    """Roots whose patient folders are links to the cohort's (the usual way to point at
    data on another disk)."""
    for source, name in ((cohort.dicom_root, "dicom"), (cohort.annotation_root, "ann")):
        (root / name).mkdir(parents=True)
        for folder in sorted(source.iterdir()):
            (root / name / folder.name).symlink_to(folder, target_is_directory=True)
    return Cohort(root / "dicom", root / "ann")


def _images(out: Path) -> dict[str, list]:
    found = {}
    for split in ("train", "val", "test"):
        coco = json.loads((out / "coco" / f"{split}.json").read_text())
        for image in coco["images"]:
            boxes = [a["bbox"] for a in coco["annotations"] if a["image_id"] == image["id"]]
            found[image["sop_instance_uid"]] = boxes
    return found


def test_linked_patient_folders_convert_like_real_ones(small_cohort, tmp_path):
    linked = _linked(small_cohort, tmp_path / "links")
    done = run_cli("convert", linked.dicom_root, linked.annotation_root, tmp_path / "ds",
                   "--workers", "1")
    assert done.exit_code == 0, done.output
    plain = run_cli("convert", small_cohort.dicom_root, small_cohort.annotation_root,
                    tmp_path / "plain", "--workers", "1")
    assert plain.exit_code == 0, plain.output
    assert "converted 3 patients" in done.output
    assert _images(tmp_path / "ds") == _images(tmp_path / "plain")
    assert len(_images(tmp_path / "ds")) == 12
    manifest = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert manifest["issues"] == []


def test_loops_and_dangling_links_are_cut_and_reported(small_cohort, tmp_path):
    # links are planted inside the patient folders: link to a copy, not the shared cohort
    cohort = _linked(small_cohort.copy(tmp_path / "data"), tmp_path / "links")
    first = sorted(cohort.dicom_root.iterdir())[0]
    (first / "loop").symlink_to(cohort.dicom_root, target_is_directory=True)
    (cohort.dicom_root / "zz-again").symlink_to(first.resolve(), target_is_directory=True)
    (cohort.dicom_root / "gone.dcm").symlink_to(tmp_path / "not-there.dcm")
    (cohort.dicom_root / "ring.dcm").symlink_to(cohort.dicom_root / "ring.dcm")
    (cohort.annotation_root / "gone.xml").symlink_to(tmp_path / "not-there.xml")
    done = run_cli("convert", cohort.dicom_root, cohort.annotation_root, tmp_path / "ds",
                   "--workers", "1")
    assert done.exit_code == 0, done.output
    manifest = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    found = sorted((i["root"], i["path"], i["kind"]) for i in manifest["issues"])
    assert found == [
        ("annotation", "gone.xml", "dangling-link"),
        ("dicom", f"{first.name}/loop", "symlink-loop"),
        ("dicom", "gone.dcm", "dangling-link"),
        ("dicom", "ring.dcm", "symlink-loop"),
        ("dicom", "zz-again", "duplicate-path"),
    ]
    assert len(_images(tmp_path / "ds")) == 12  # every slice once, no duplicate-UID issue


def test_a_dicom_root_without_slices_fails_naming_it(small_cohort, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not DICOM")
    line = one_line_error(
        run_cli("convert", empty, small_cohort.annotation_root, tmp_path / "ds"),
        "no DICOM slice", str(empty),
    )
    assert "1 not-dicom" in line
    assert not (tmp_path / "ds" / "dataset.json").exists()


def test_an_annotation_root_without_usable_xml_fails_naming_it(small_cohort, tmp_path):
    empty = tmp_path / "no-xml"
    empty.mkdir()
    one_line_error(
        run_cli("convert", small_cohort.dicom_root, empty, tmp_path / "ds1"),
        "no annotation", str(empty),
    )
    strangers = tmp_path / "strangers" / "A0001"
    strangers.mkdir(parents=True)
    (strangers / "1.2.3.4.xml").write_text("<annotation/>")
    one_line_error(
        run_cli("convert", small_cohort.dicom_root, strangers.parent, tmp_path / "ds2"),
        "no usable annotation", str(strangers.parent), "1 missing-dicom",
    )
    for out in ("ds1", "ds2"):
        assert not (tmp_path / out / "dataset.json").exists()


def test_annotations_that_are_all_unusable_fail_naming_the_root(small_cohort, tmp_path):
    cohort = small_cohort.copy(tmp_path)
    for xml in cohort.annotation_root.rglob("*.xml"):
        xml.write_text("<annotation><object><name>Q</name><bndbox><xmin>1</xmin><ymin>1"
                       "</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>")
    one_line_error(
        run_cli("convert", cohort.dicom_root, cohort.annotation_root, tmp_path / "ds",
                "--workers", "1"),
        "no usable annotation", str(cohort.annotation_root), "12 unknown-label",
    )
    assert not (tmp_path / "ds" / "dataset.json").exists()
