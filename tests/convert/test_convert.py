"""synth → convert: the dataset contract, boxes, splits, accounting, resume, shards."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REALDATA

from detect.boxes import clip_xyxy, coco_to_xyxy, yolo_to_xyxy
from detect.convert import convert
from detect.convert.config import ConvertConfig, Shard
from detect.dataset import load_dataset
from detect.io.dicom import read_hu
from detect.io.voc import parse_voc
from detect.recipe import parse_channels

IMAGE_KEYS = {
    "id",
    "file_name",
    "width",
    "height",
    "patient_id",
    "histology",
    "sop_instance_uid",
    "series_instance_uid",
    "study_instance_uid",
    "source_dicom",
    "source_xml",
    "slice_index",
}


def _flat(boxes) -> list[float]:
    return [v for box in sorted(boxes) for v in box]


def _coco(root: Path, split: str) -> dict:
    return json.loads((root / "coco" / f"{split}.json").read_text())


def _all_images(root: Path):
    for split in ("train", "val", "test"):
        coco = _coco(root, split)
        by_image: dict[int, list] = {}
        for ann in coco["annotations"]:
            by_image.setdefault(ann["image_id"], []).append(ann)
        for image in coco["images"]:
            yield split, image, by_image.get(image["id"], [])


def test_contract_fields(dataset):
    info = load_dataset(dataset)
    manifest = info.manifest
    for key in (
        "version",
        "sources",
        "recipe",
        "classes",
        "splits",
        "counts",
        "converter",
        "issues",
        "patients",
        "split_notes",
    ):
        assert key in manifest, key
    assert manifest["recipe"]["windows"][0] == {
        "name": "lung",
        "width_hu": 1400.0,
        "level_hu": -700.0,
    }
    assert info.classes == ["A", "B", "E", "G"]
    assert "names:" in (dataset / "data.yaml").read_text()
    images = list(_all_images(dataset))
    assert images, "nothing converted"
    for split, image, _ in images:
        assert set(image) >= IMAGE_KEYS
        png = cv2.imread(str(dataset / image["file_name"]), cv2.IMREAD_UNCHANGED)
        assert png.shape == (image["height"], image["width"], 3) and png.dtype == np.uint8
        assert (dataset / "labels" / split / (Path(image["file_name"]).stem + ".txt")).is_file()


def test_boxes_equal_the_xml_in_coco_and_yolo(dataset, cohort):
    checked = 0
    for split, image, anns in _all_images(dataset):
        voc = parse_voc(cohort.annotation_root / image["source_xml"])
        expected = sorted(
            clip_xyxy(o.xyxy, image["width"], image["height"]).xyxy for o in voc.objects
        )
        assert _flat(coco_to_xyxy(a["bbox"]) for a in anns) == pytest.approx(_flat(expected))
        label_file = dataset / "labels" / split / (Path(image["file_name"]).stem + ".txt")
        yolo = [
            yolo_to_xyxy([float(v) for v in line.split()[1:]], image["width"], image["height"])
            for line in label_file.read_text().splitlines()
        ]
        assert _flat(yolo) == pytest.approx(_flat(expected), abs=1e-3)
        classes = {int(line.split()[0]) for line in label_file.read_text().splitlines()}
        assert classes == {["A", "B", "E", "G"].index(image["histology"])}
        checked += len(anns)
    assert checked > 0


def test_png_pixels_are_the_recipe_applied_to_hu(dataset, cohort):
    _, image, _ = next(iter(_all_images(dataset)))
    png = cv2.imread(str(dataset / image["file_name"]))[:, :, ::-1]
    hu = read_hu(cohort.dicom_root / image["source_dicom"])
    expected = load_dataset(dataset).recipe.render({0: hu})
    assert np.array_equal(png, expected)


def test_splits_by_patient(dataset):
    manifest = load_dataset(dataset).manifest
    seen: dict[str, str] = {}
    for split, image, _ in _all_images(dataset):
        assert seen.setdefault(image["patient_id"], split) == split
        assert image["patient_id"] in manifest["splits"][split]
    listed = [p for ids in manifest["splits"].values() for p in ids]
    assert len(listed) == len(set(listed))


def test_accounting_every_xml_converted_or_reported(dataset, cohort):
    manifest = load_dataset(dataset).manifest
    xmls = {
        str(p.relative_to(cohort.annotation_root)) for p in cohort.annotation_root.rglob("*.xml")
    }
    converted = {image["source_xml"] for _, image, _ in _all_images(dataset)}
    reported = {i["path"] for i in manifest["issues"] if i["root"] == "annotation"}
    assert xmls == converted | reported
    assert manifest["accounting"]["unaccounted"] == []
    fused = [i for i in manifest["issues"] if i["kind"] == "fused-image"]
    assert fused, "the phantom puts some annotations on fused screenshots"
    assert all(i["action"] == "skipped" for i in fused)


def test_same_seed_same_output(dataset, cohort, tmp_path):
    again = tmp_path / "again"
    convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, again, workers=1))
    for split in ("train", "val", "test"):
        assert _coco(again, split) == _coco(dataset, split)
    assert load_dataset(again).splits == load_dataset(dataset).splits


def test_shards_merge_to_the_unsharded_dataset(dataset, cohort, tmp_path):
    out = tmp_path / "sharded"
    first = convert(
        ConvertConfig(cohort.dicom_root, cohort.annotation_root, out, workers=1, shard=Shard(0, 2))
    )
    assert not first.merged and not (out / "dataset.json").exists()
    second = convert(
        ConvertConfig(cohort.dicom_root, cohort.annotation_root, out, workers=1, shard=Shard(1, 2))
    )
    assert second.merged
    assert first.patients_converted + second.patients_converted == second.patients_total
    for split in ("train", "val", "test"):
        assert _coco(out, split) == _coco(dataset, split)


def test_rerun_skips_finished_patients_and_recovers_a_lost_one(cohort, tmp_path):
    out = tmp_path / "resume"
    config = ConvertConfig(cohort.dicom_root, cohort.annotation_root, out, workers=1)
    first = convert(config)
    before = {s: _coco(out, s) for s in ("train", "val", "test")}
    lost = sorted((out / ".parts").glob("*.json"))[0]
    lost.unlink()
    second = convert(config)
    assert second.patients_converted == 1
    assert second.patients_reused == first.patients_total - 1
    assert {s: _coco(out, s) for s in ("train", "val", "test")} == before


def test_interrupt_keeps_finished_patients(cohort, tmp_path, monkeypatch):
    import detect.convert.pipeline as pipeline

    out = tmp_path / "interrupted"
    config = ConvertConfig(cohort.dicom_root, cohort.annotation_root, out, workers=1)
    real = pipeline.process_task
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 12:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "process_task", flaky)
    with pytest.raises(KeyboardInterrupt):
        convert(config)
    done_parts = len(list((out / ".parts").glob("*.json")))
    assert done_parts >= 1 and not (out / "dataset.json").exists()
    assert not list(out.rglob("*.tmp"))
    monkeypatch.setattr(pipeline, "process_task", real)
    summary = convert(config)
    assert summary.merged and summary.patients_reused == done_parts


def test_25d_channels_are_the_neighbouring_slices(cohort, tmp_path):
    out = tmp_path / "two5d"
    convert(
        ConvertConfig(
            cohort.dicom_root, cohort.annotation_root, out, workers=1, recipe=parse_channels("2.5d")
        )
    )
    info = load_dataset(out)
    assert info.manifest["recipe"]["kind"] == "2.5d"
    assert info.manifest["recipe"]["slice_offsets"] == [-1, 0, 1]
    _, image, _ = next(iter(_all_images(out)))
    from detect.convert.index import build_index

    index = build_index(cohort.dicom_root)
    series = index.series()[image["series_instance_uid"]]
    pos = image["slice_index"]
    assert series[pos].sop_instance_uid == image["sop_instance_uid"]
    png = cv2.imread(str(out / image["file_name"]))[:, :, ::-1]
    window = info.recipe.windows[0]
    for channel, offset in enumerate((-1, 0, 1)):
        neighbour = series[min(max(pos + offset, 0), len(series) - 1)]
        assert np.array_equal(png[:, :, channel], window.apply(read_hu(neighbour.path)))


def test_a_25d_step_in_mm_stacks_the_slices_nearest_that_far(cohort, tmp_path):
    out = tmp_path / "two5d-mm"
    convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, out, workers=1,
                          recipe=parse_channels("2.5d:lung:12mm")))
    info = load_dataset(out)
    assert info.manifest["recipe"]["slice_step_mm"] == 12.0
    assert info.recipe.step_mm == 12.0
    from detect.convert.index import build_index

    index = build_index(cohort.dicom_root)
    window = info.recipe.windows[0]
    checked = 0
    for _, image, _ in list(_all_images(out))[:6]:
        series = index.series()[image["series_instance_uid"]]
        z = [h.position[2] for h in series]
        pos = image["slice_index"]
        png = cv2.imread(str(out / image["file_name"]))[:, :, ::-1]
        for channel, sign in ((0, -1), (2, 1)):
            # every other slice in the direction, nearest to 12 mm away (phantom: one
            # acquisition, distinct positions)
            side = [k for k in range(len(z)) if (z[k] - z[pos]) * sign > 0]
            if not side:
                continue
            want = min(side, key=lambda k: (abs(abs(z[k] - z[pos]) - 12.0), abs(k - pos)))
            assert np.array_equal(png[:, :, channel], window.apply(read_hu(series[want].path)))
            checked += abs(want - pos) > 1
    assert checked  # the phantom's spacing is below 12 mm: the step skipped slices


def test_negatives_and_tumor_classes(tmp_path):
    from detect.synth.cohort import SynthConfig, synthesize

    cohort = synthesize(
        tmp_path / "c", SynthConfig(patients=4, slices=40, size=64, seed=1, fused=False)
    )
    out = tmp_path / "neg"
    convert(
        ConvertConfig(
            cohort.dicom_root,
            cohort.annotation_root,
            out,
            workers=1,
            negatives=2,
            class_mode="tumor",
        )
    )
    info = load_dataset(out)
    assert info.classes == ["tumor"]
    images = list(_all_images(out))
    patients = {i["patient_id"] for _, i, _ in images}
    # one patient per letter: every patient in train, val holds copies of training images
    negatives = {i["sop_instance_uid"]: (s, i) for s, i, anns in images if not anns}
    assert len(negatives) == 2 * len(patients)
    for split, image in negatives.values():
        assert image["source_xml"] is None
        label = out / "labels" / split / (Path(image["file_name"]).stem + ".txt")
        assert label.read_text() == ""
        annotated = [
            i["slice_index"]
            for _, i, anns in images
            if anns and i["series_instance_uid"] == image["series_instance_uid"]
        ]
        assert min(abs(image["slice_index"] - a) for a in annotated) > 5
    for _, _, anns in images:
        assert {a["category_id"] for a in anns} <= {1}


@pytest.mark.skipif(not REALDATA.is_dir(), reason="shared/realdata sample absent")
def test_real_sample_converts_all_18_xmls(tmp_path):
    ann_root = REALDATA / "Annotation"
    out = tmp_path / "real"
    summary = convert(ConvertConfig(REALDATA / "Lung-PET-CT-Dx", ann_root, out, workers=2))
    assert summary.images == 18 and summary.boxes == 18
    manifest = load_dataset(out).manifest
    assert manifest["issues"] == [] and manifest["accounting"]["xml_converted"] == 18
    for _, image, anns in _all_images(out):
        voc = parse_voc(ann_root / image["source_xml"])
        assert [coco_to_xyxy(a["bbox"]) for a in anns] == [o.xyxy for o in voc.objects]
        assert image["patient_id"] == "A0002" and image["width"] == 512
