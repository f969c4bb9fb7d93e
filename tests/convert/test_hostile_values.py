"""Header values that make HU or geometry meaningless, and 2.5d stacks that do not fit,
are counted skips of convert, never black PNGs or a traceback (issue 21, items 1 and 8)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from support.hostile import rewrite, run_cli

from detect.convert.index import build_index


def _convert(cohort, out: Path, *extra: str) -> dict:
    done = run_cli("convert", cohort.dicom_root, cohort.annotation_root, out,
                   "--workers", "1", *extra)
    assert done.exit_code == 0, done.output
    assert "Traceback" not in done.output
    return json.loads((out / "dataset.json").read_text())


def _images(out: Path) -> dict[str, dict]:
    found = {}
    for split in ("train", "val", "test"):
        coco = json.loads((out / "coco" / f"{split}.json").read_text())
        found.update({image["sop_instance_uid"]: image for image in coco["images"]})
    return found


def _patient_slices(cohort, letter_folder: str) -> list[Path]:
    return sorted(p for p in cohort.dicom_root.rglob("*.dcm") if letter_folder in str(p))


@pytest.mark.parametrize(("keyword", "value"), [
    ("RescaleSlope", "NaN"), ("RescaleSlope", "0"), ("RescaleSlope", "-1"),
    ("RescaleSlope", "1e308"), ("RescaleIntercept", "1e12"),
    ("PixelSpacing", ["0", "0.7"]),
    ("ImageOrientationPatient", ["nan", "0", "0", "0", "1", "0"]),
])
def test_a_patient_with_implausible_values_is_skipped_and_counted(small_cohort, tmp_path,
                                                                  keyword, value):
    cohort = small_cohort.copy(tmp_path)
    annotated = cohort.annotated()
    patient = sorted(p.name for p in cohort.dicom_root.iterdir())[0]
    for path in _patient_slices(cohort, patient):
        rewrite(path, **{keyword: value})
    manifest = _convert(cohort, tmp_path / "ds")
    theirs = {uid for uid, (dicom, _) in annotated.items() if patient in str(dicom)}
    assert theirs
    images = _images(tmp_path / "ds")
    assert not theirs & set(images)  # no black or garbage PNG carries their boxes
    assert len(images) == len(annotated) - len(theirs)
    issues = {i["path"]: i for i in manifest["issues"] if i["kind"] == "implausible-value"}
    xml = {str(annotated[uid][1].relative_to(cohort.annotation_root)) for uid in theirs}
    assert set(issues) == xml and all(keyword in i["detail"] for i in issues.values())
    assert manifest["issue_counts"]["implausible-value"] == len(theirs)
    assert manifest["accounting"]["unaccounted"] == []


def _annotated_neighbour(cohort) -> tuple[str, Path, Path]:
    """An annotated slice and the file of its +1 neighbour (not annotated itself)."""
    index = build_index(cohort.dicom_root)
    annotated = cohort.annotated()
    for uid in sorted(annotated):
        header = index.by_sop[uid]
        series = index.series()[header.series_instance_uid]
        position = series.index(header)
        if 0 < position < len(series) - 1:
            other = series[position + 1]
            if other.sop_instance_uid not in annotated:
                return uid, annotated[uid][1], other.path
    raise AssertionError("no annotated slice with an unannotated neighbour")


def test_a_25d_neighbour_of_another_size_is_a_counted_skip(small_cohort, tmp_path):
    cohort = small_cohort.copy(tmp_path)
    uid, xml, neighbour = _annotated_neighbour(cohort)
    ds = pydicom.dcmread(neighbour)
    ds.Rows = ds.Columns = 32
    ds.PixelData = np.full((32, 32), 1024, np.uint16).tobytes()
    ds.save_as(neighbour, enforce_file_format=True)
    manifest = _convert(cohort, tmp_path / "ds", "--channels", "2.5d")
    issue = next(i for i in manifest["issues"]
                 if i["path"] == str(xml.relative_to(cohort.annotation_root)))
    assert issue["kind"] == "neighbour-mismatch" and "32 x 32" in issue["detail"]
    assert uid not in _images(tmp_path / "ds")
    assert manifest["accounting"]["unaccounted"] == []


def test_a_nan_orientation_does_not_reorder_a_series_for_25d(small_cohort, tmp_path):
    cohort = small_cohort.copy(tmp_path)
    _convert(cohort, tmp_path / "clean", "--channels", "2.5d")
    before = _images(tmp_path / "clean")
    index = build_index(cohort.dicom_root)
    annotated = cohort.annotated()
    series_uid = index.by_sop[sorted(annotated)[0]].series_instance_uid
    walked = sorted(h.path for h in index.series()[series_uid])
    bad = walked[0]  # the first one the index meets: old code took its normal
    bad_uid = str(pydicom.dcmread(bad, stop_before_pixels=True).SOPInstanceUID)
    rewrite(bad, ImageOrientationPatient=["nan", "0", "0", "0", "1", "0"])
    manifest = _convert(cohort, tmp_path / "after", "--channels", "2.5d")
    after = _images(tmp_path / "after")
    order = [h.sop_instance_uid for h in index.series()[series_uid]]
    near = set(order[max(order.index(bad_uid) - 1, 0):order.index(bad_uid) + 2])
    kept = [uid for uid in before if uid not in near]
    assert kept and all(after[uid]["slice_index"] == before[uid]["slice_index"] for uid in kept)
    for uid in kept:
        name = before[uid]["file_name"]
        assert (tmp_path / "after" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()
    skipped = {i["path"] for i in manifest["issues"] if i["kind"] == "implausible-value"}
    touched = {str(annotated[u][1].relative_to(cohort.annotation_root)) for u in near
               if u in annotated}
    assert skipped == touched  # the slice and any image it is a neighbour of
