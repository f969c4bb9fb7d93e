"""Pixels and boxes that would crash or mislead convert: non-finite coordinates,
decompression bombs, CT slices without their rescale."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from support.hostile import one_line_error, rewrite, run_cli


def _issues(out: Path) -> dict[str, list[tuple[str, str]]]:
    manifest = json.loads((out / "dataset.json").read_text())
    found: dict[str, list[tuple[str, str]]] = {}
    for issue in manifest["issues"]:
        found.setdefault(issue["path"], []).append((issue["kind"], issue["action"]))
    return found


def _coco_images(out: Path) -> dict[str, list[list[float]]]:
    found = {}
    for split in ("train", "val", "test"):
        coco = json.loads((out / "coco" / f"{split}.json").read_text())
        for image in coco["images"]:
            found[image["source_xml"]] = [
                a["bbox"] for a in coco["annotations"] if a["image_id"] == image["id"]
            ]
    return found


def _convert(cohort, out: Path, *extra: str) -> None:
    done = run_cli("convert", cohort.dicom_root, cohort.annotation_root, out,
                   "--workers", "1", *extra)
    assert done.exit_code == 0, done.output


@pytest.mark.parametrize("value", ["inf", "-inf", "1e400", "nan", "-Infinity"])
def test_a_non_finite_coordinate_is_box_invalid_and_the_rest_converts(
    small_cohort, tmp_path, value
):
    cohort = small_cohort.copy(tmp_path)
    xmls = sorted(cohort.annotation_root.rglob("*.xml"))
    alone, pair = xmls[0], xmls[1]
    alone.write_text(alone.read_text().replace("<xmin>", f"<xmin>{value}<!--", 1)
                     .replace("</xmin>", "--></xmin>", 1))
    text = pair.read_text()
    obj = text[text.index("<object>"): text.index("</object>") + len("</object>")]
    bad = obj.replace("<ymax>", f"<ymax>{value}<!--").replace("</ymax>", "--></ymax>")
    pair.write_text(text.replace(obj, obj + bad))
    _convert(cohort, tmp_path / "ds")
    issues = _issues(tmp_path / "ds")
    rel = {p: str(p.relative_to(cohort.annotation_root)) for p in (alone, pair)}
    assert issues[rel[alone]] == [("box-invalid", "skipped")]
    assert issues[rel[pair]] == [("box-invalid", "object-dropped")]
    images = _coco_images(tmp_path / "ds")
    assert rel[alone] not in images
    assert len(images[rel[pair]]) == 1
    assert len(images) == 11


def _plant(cohort, source: Path, like: Path) -> str:
    """Copy ``source`` into the cohort beside ``like``'s series, with an XML that
    annotates it; returns the XML's path relative to the annotation root."""
    series = cohort.dicom_root / like.parent.relative_to(like.parents[3])
    target = series / f"bomb-{source.name}"
    shutil.copyfile(source, target)
    uid = str(pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID)
    folder = next(f for f in cohort.annotation_root.iterdir()
                  if like.parts[-4].endswith(f.name))
    xml = folder / f"{uid}.xml"
    xml.write_text(next(folder.glob("*.xml")).read_text())
    return str(xml.relative_to(cohort.annotation_root))


def test_decompression_bombs_are_skipped_before_decoding(small_cohort, bombs, tmp_path):
    cohort = small_cohort.copy(tmp_path)
    rel_rle = _plant(cohort, bombs.rle, bombs.like)
    rel_deflate = _plant(cohort, bombs.deflate, bombs.like)
    _convert(cohort, tmp_path / "ds")
    issues = _issues(tmp_path / "ds")
    assert issues[rel_rle] == [("image-too-large", "skipped")]
    assert issues[rel_deflate] == [("image-too-large", "skipped")]
    assert len(_coco_images(tmp_path / "ds")) == 12
    manifest = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    detail = next(i["detail"] for i in manifest["issues"] if i["path"] == rel_rle)
    assert "60000 x 60000" in detail and "--max-pixels" in detail


def test_max_pixels_is_checked_and_can_be_lowered(small_cohort, tmp_path):
    from detect.convert.config import ConvertConfig
    from detect.errors import ConfigError

    roots = (small_cohort.dicom_root, small_cohort.annotation_root)
    with pytest.raises(ConfigError, match="--max-pixels"):
        ConvertConfig(*roots, tmp_path / "x", max_pixels=0)
    _convert(small_cohort, tmp_path / "exact", "--max-pixels", str(64 * 64))
    assert len(_coco_images(tmp_path / "exact")) == 12
    line = one_line_error(
        run_cli("convert", *roots, tmp_path / "below", "--workers", "1",
                "--max-pixels", str(64 * 64 - 1)),
        "no usable annotation",
    )
    assert "12 image-too-large" in line


def test_a_ct_slice_without_rescale_is_reported_not_guessed(small_cohort, tmp_path):
    cohort = small_cohort.copy(tmp_path)
    annotated = cohort.annotated()
    uids = sorted(annotated)
    (dicom_a, xml_a), (dicom_b, xml_b) = annotated[uids[0]], annotated[uids[1]]
    rewrite(dicom_a, RescaleSlope=None, RescaleIntercept=None)
    rewrite(dicom_b, RescaleIntercept=None)
    _convert(cohort, tmp_path / "ds")
    issues = _issues(tmp_path / "ds")
    for xml in (xml_a, xml_b):
        rel = str(xml.relative_to(cohort.annotation_root))
        assert issues[rel] == [("missing-rescale", "skipped")]
    assert len(_coco_images(tmp_path / "ds")) == 10


def test_a_neighbour_without_rescale_skips_the_25d_image(small_cohort, tmp_path):
    cohort = small_cohort.copy(tmp_path)
    annotated = cohort.annotated()
    series = sorted(next(iter(annotated.values()))[0].parent.glob("*.dcm"))
    headers = {p: pydicom.dcmread(p, stop_before_pixels=True) for p in series}
    by_position = sorted(series, key=lambda p: float(headers[p].ImagePositionPatient[2]))
    uids = [str(headers[p].SOPInstanceUID) for p in by_position]
    target = next(i for i in range(1, len(uids) - 1)
                  if uids[i] in annotated and uids[i + 1] not in annotated)
    rewrite(by_position[target + 1], RescaleSlope=None, RescaleIntercept=None)
    _convert(cohort, tmp_path / "ds", "--channels", "2.5d")
    rel = str(annotated[uids[target]][1].relative_to(cohort.annotation_root))
    assert _issues(tmp_path / "ds")[rel] == [("missing-rescale", "skipped")]
