"""The same annotation read twice counts once; a SOPInstanceUID in two different files and an
SR of another patient place no box (issue 21, items 2, 4 and 5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from support.evaluation import gt_as_predictions
from support.hostile import run_cli
from support.idc_sr import write_idc_srs_for

from detect.dataset import load_dataset
from detect.eval.score import evaluate_predictions


def _convert(dicom_root: Path, annotation_root: Path, out: Path) -> dict:
    done = run_cli("convert", dicom_root, annotation_root, out, "--workers", "1")
    assert done.exit_code == 0, done.output
    return json.loads((out / "dataset.json").read_text())


def _sops(out: Path) -> list[str]:
    sops = []
    # a val split of training images (no val patient: val_from_train) repeats them
    filled = json.loads((out / "dataset.json").read_text()).get("val_from_train")
    for split in ("train", "test") if filled else ("train", "val", "test"):
        coco = json.loads((out / "coco" / f"{split}.json").read_text())
        sops += [image["sop_instance_uid"] for image in coco["images"]]
    return sops


def _kinds(manifest: dict, kind: str) -> dict[str, str]:
    return {i["path"]: i["detail"] for i in manifest["issues"] if i["kind"] == kind}


@pytest.fixture(scope="module")
def clean(small_cohort, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "ds"
    _convert(small_cohort.dicom_root, small_cohort.annotation_root, out)
    return out


@pytest.fixture(scope="module")
def srs(small_cohort, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("srs")
    write_idc_srs_for(small_cohort.dicom_root, small_cohort.annotation_root, out)
    return out


def _perfect_scores(clean: Path, other: Path) -> dict[str, float | None]:
    """mAP50 on ``other`` of the predictions that are exactly ``clean``'s boxes."""
    truth, dataset = load_dataset(clean), load_dataset(other)
    return {split: evaluate_predictions(dataset, split, gt_as_predictions(truth, split),
                                        bootstrap=0).map50
            for split in ("train", "val", "test") if truth.load_coco(split)["annotations"]}


def test_a_copied_xml_folder_counts_each_box_once(small_cohort, clean, tmp_path):
    annotations = tmp_path / "ann"
    shutil.copytree(small_cohort.annotation_root, annotations)
    first = sorted(p for p in annotations.iterdir() if p.is_dir())[0]
    shutil.copytree(first, annotations / f"{first.name} (copy)")
    manifest = _convert(small_cohort.dicom_root, annotations, tmp_path / "ds")
    sops = _sops(tmp_path / "ds")
    assert len(sops) == len(set(sops)) == len(_sops(clean))
    copies = _kinds(manifest, "duplicate-annotation")  # one of each pair, by path order
    assert sorted(Path(p).name for p in copies) == sorted(p.name for p in first.glob("*.xml"))
    assert all("counted once" in detail for detail in copies.values())
    assert manifest["accounting"]["unaccounted"] == []
    scores = _perfect_scores(clean, tmp_path / "ds")
    assert scores and all(s == pytest.approx(1.0) for s in scores.values()), scores


def test_two_xmls_of_one_slice_that_disagree_are_both_reported_and_neither_used(
    small_cohort, tmp_path
):
    annotations = tmp_path / "ann"
    shutil.copytree(small_cohort.annotation_root, annotations)
    xml = sorted(annotations.rglob("*.xml"))[0]
    other = annotations / "elsewhere" / xml.name
    other.parent.mkdir()
    text = xml.read_text()
    start = text.index("<xmax>") + len("<xmax>")
    other.write_text(text[:start] + "63" + text[text.index("</xmax>"):])
    manifest = _convert(small_cohort.dicom_root, annotations, tmp_path / "ds")
    assert xml.stem not in _sops(tmp_path / "ds")
    reported = _kinds(manifest, "duplicate-annotation")
    assert set(reported) == {str(xml.relative_to(annotations)), f"elsewhere/{xml.name}"}
    assert all("different boxes" in detail for detail in reported.values())


def test_a_copied_sr_document_counts_each_box_once(small_cohort, clean, srs, tmp_path):
    annotations = tmp_path / "srs"
    shutil.copytree(srs, annotations)
    first = sorted(annotations.rglob("*.dcm"))[0]
    shutil.copyfile(first, annotations / "copy-of-an-sr.dcm")
    manifest = _convert(small_cohort.dicom_root, annotations, tmp_path / "ds")
    copies = _kinds(manifest, "duplicate-annotation")
    assert set(copies) == {"copy-of-an-sr.dcm"} and "read once" in copies["copy-of-an-sr.dcm"]
    scores = _perfect_scores(clean, tmp_path / "ds")
    assert scores and all(s == pytest.approx(1.0) for s in scores.values()), scores
    assert manifest["accounting"]["unaccounted"] == []


def test_two_sr_documents_with_the_same_boxes_give_each_box_once(small_cohort, clean, srs,
                                                                 tmp_path):
    annotations = tmp_path / "srs"
    shutil.copytree(srs, annotations)
    first = sorted(annotations.rglob("*.dcm"))[0]
    ds = pydicom.dcmread(first)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(annotations / "republished.dcm", enforce_file_format=True)
    manifest = _convert(small_cohort.dicom_root, annotations, tmp_path / "ds")
    again = _kinds(manifest, "duplicate-annotation")
    assert set(again) == {"republished.dcm"} and "counted once" in again["republished.dcm"]
    scores = _perfect_scores(clean, tmp_path / "ds")
    assert scores and all(s == pytest.approx(1.0) for s in scores.values()), scores


def _impostor(small_cohort, tmp_path) -> tuple[Path, str, Path]:
    """A copy of the DICOM tree where a slice of the first patient walked carries the UID
    of an annotated slice of the last one: (DICOM root, that UID, the impostor file)."""
    root = tmp_path / "dicom"
    shutil.copytree(small_cohort.dicom_root, root)
    annotated = small_cohort.annotated()
    patients = sorted(p.name for p in root.iterdir())
    uid = next(u for u, (path, _) in sorted(annotated.items()) if patients[-1] in str(path))
    donor = sorted((root / patients[0]).rglob("*.dcm"))[0]
    ds = pydicom.dcmread(donor)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
    impostor = donor.with_name("0-impostor.dcm")
    ds.save_as(impostor, enforce_file_format=True)
    return root, uid, impostor


def test_one_uid_in_two_different_files_is_reported_for_both_and_used_for_no_box(
    small_cohort, tmp_path
):
    root, uid, impostor = _impostor(small_cohort, tmp_path)
    manifest = _convert(root, small_cohort.annotation_root, tmp_path / "ds")
    assert uid not in _sops(tmp_path / "ds")
    conflicts = _kinds(manifest, "uid-conflict")
    genuine = small_cohort.annotated()[uid][0].relative_to(small_cohort.dicom_root)
    xml = small_cohort.annotated()[uid][1].relative_to(small_cohort.annotation_root)
    assert set(conflicts) == {str(impostor.relative_to(root)), str(genuine), str(xml)}
    assert all("PatientID" in detail for detail in conflicts.values())
    assert manifest["accounting"]["unaccounted"] == []


def test_an_identical_copy_of_a_slice_is_still_read_once(small_cohort, tmp_path):
    root = tmp_path / "dicom"
    shutil.copytree(small_cohort.dicom_root, root)
    uid, (path, _) = sorted(small_cohort.annotated().items())[0]
    copy = root / "copies" / "same.dcm"
    copy.parent.mkdir()
    shutil.copyfile(path, copy)
    manifest = _convert(root, small_cohort.annotation_root, tmp_path / "ds")
    assert uid in _sops(tmp_path / "ds") and not _kinds(manifest, "uid-conflict")
    assert "copies/same.dcm" in _kinds(manifest, "unsupported-dicom")


@pytest.mark.parametrize("keyword", ["PatientID", "StudyInstanceUID"])
def test_an_sr_of_another_patient_or_study_places_no_box(small_cohort, srs, tmp_path,
                                                         keyword):
    annotations = tmp_path / "srs"
    shutil.copytree(srs, annotations)
    target = sorted(annotations.rglob("*.dcm"))[0]
    ds = pydicom.dcmread(target)
    setattr(ds, keyword, "Lung_Dx-G9999" if keyword == "PatientID" else "1.2.3.4.5")
    ds.save_as(target, enforce_file_format=True)
    manifest = _convert(small_cohort.dicom_root, annotations, tmp_path / "ds")
    mismatched = _kinds(manifest, "patient-mismatch")
    rel = str(target.relative_to(annotations))
    assert set(mismatched) == {rel} and keyword in mismatched[rel]
    for split in ("train", "val", "test"):
        coco = json.loads((tmp_path / "ds" / "coco" / f"{split}.json").read_text())
        assert all(rel not in image["source_sr"] for image in coco["images"])
    assert _sops(tmp_path / "ds") and manifest["accounting"]["unaccounted"] == []
