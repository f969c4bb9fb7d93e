"""What a user matches up in predict's OUT: the short patient ID and the header's PatientID
side by side in every table and record, per-slice files named so that a folder lists them
series by series in slice order, and VOC files that name an image beside them (LabelImg
opens the folder)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from support.detectors import FixedBoxes
from support.realdata import REALDATA_ROOT

from detect.io.dicom import read_hu
from detect.io.paths import SAFE_NAME
from detect.io.png import read_png
from detect.io.voc import parse_voc
from detect.predict.outdir import valid_path
from detect.predict.run import PredictConfig, predict
from detect.predict.writers import SliceResult, slice_stem
from detect.predictions import read_predictions
from detect.recipe import WINDOW_PRESETS, Window
from detect.synth.cohort import SynthConfig, synthesize

NAME = re.compile(r"s(?P<series>\d{4}|x)-(?P<hash>[0-9a-f]{6})_(?P<index>\d{4})_"
                  r"i(?P<instance>\d{4}|x)_(?P<sop>[0-9.]+)\.(?P<suffix>xml|png)")
LUNG = Window("lung", *WINDOW_PRESETS["lung"])


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """Two phantom patients, 10 slices of 128 px each."""
    return synthesize(tmp_path_factory.mktemp("phantom") / "cohort", SynthConfig(
        patients=2, slices=10, size=128, seed=3, letter_mix={"A": 1, "G": 1}, fused=False,
        pet=False, compression="none"))


def _headers(root: Path) -> dict[str, pydicom.Dataset]:
    found = {}
    for path in root.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found[str(ds.SOPInstanceUID)] = ds
    return found


def _predict(run_dir: Path, source: Path, out: Path, monkeypatch, box, **options) -> None:
    fake = FixedBoxes([(box, 0.8)])
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: fake)
    predict(PredictConfig(sources=(source,), weights=run_dir, out=out, device="cpu",
                          workers=1, lung_field="off", **options))


def test_files_sort_in_slice_order_and_carry_series_and_instance(tiny_run, phantom, tmp_path,
                                                                monkeypatch):
    out = tmp_path / "out"
    _predict(tiny_run[0].run_dir, phantom.dicom_root, out, monkeypatch, (40.0, 40.0, 60.0, 60.0),
             save=("json", "voc", "png"))
    headers = _headers(phantom.dicom_root)
    slices = _rows(out / "slices.csv")
    assert len(slices) == 20
    for patient in {r["patient_id"] for r in slices}:
        rows = sorted((r for r in slices if r["patient_id"] == patient),
                      key=lambda r: (int(headers[r["sop_instance_uid"]].SeriesNumber),
                                     int(r["slice_index"])))
        for kind, suffix in (("voc", ".xml"), ("voc", ".png"), ("png", ".png")):
            names = sorted(p.name for p in (out / kind / patient).glob(f"*{suffix}"))
            assert [NAME.fullmatch(n).group("sop") for n in names] == [  # type: ignore[union-attr]
                r["sop_instance_uid"] for r in rows]
        for name in sorted(p.name for p in (out / "voc" / patient).glob("*.xml")):
            match = NAME.fullmatch(name)
            assert match is not None and valid_path(f"voc/{patient}/{name}")
            ds = headers[match.group("sop")]
            assert int(match.group("series")) == int(ds.SeriesNumber)
            assert int(match.group("instance")) == int(ds.InstanceNumber)
    numbers = [(int(r["slice_index"]), int(r["instance_number"])) for r in slices]
    assert any(a != b - 1 for a, b in numbers)  # the phantom numbers against geometry


def test_every_table_and_record_carries_both_patient_ids(tiny_run, phantom, tmp_path,
                                                         monkeypatch):
    out = tmp_path / "out"
    _predict(tiny_run[0].run_dir, phantom.dicom_root, out, monkeypatch, (40.0, 40.0, 60.0, 60.0))
    headers = _headers(phantom.dicom_root)
    by_sop = {sop: str(ds.PatientID) for sop, ds in headers.items()}
    for p in read_predictions(out / "predictions.json"):
        assert p.dicom_patient_id == by_sop[p.sop_instance_uid]
        assert p.dicom_patient_id == f"Lung_Dx-{p.patient_id}"
    for row in _rows(out / "slices.csv"):
        assert row["dicom_patient_id"] == by_sop[row["sop_instance_uid"]]
    for name in ("summary.csv", "lesions.csv"):
        rows = _rows(out / name)
        assert rows and all(r["dicom_patient_id"] == f"Lung_Dx-{r['patient_id']}" for r in rows)
    lesions = json.loads((out / "lesions.json").read_text())["series"]
    assert all(s["dicom_patient_id"] == f"Lung_Dx-{s['patient_id']}" for s in lesions)


def test_a_voc_file_names_the_plain_lung_window_image_beside_it(tiny_run, phantom, tmp_path,
                                                                monkeypatch):
    out = tmp_path / "out"
    _predict(tiny_run[0].run_dir, phantom.dicom_root, out, monkeypatch, (40.0, 40.0, 60.0, 60.0))
    source = {r["sop_instance_uid"]: Path(r["path"]) for r in _rows(out / "slices.csv")}
    xmls = sorted((out / "voc").rglob("*.xml"))
    assert len(xmls) == 20
    for xml in xmls:
        text = xml.read_text()
        filename = re.search(r"<filename>(.*)</filename>", text).group(1)  # type: ignore[union-attr]
        path = re.search(r"<path>(.*)</path>", text).group(1)  # type: ignore[union-attr]
        folder = re.search(r"<folder>(.*)</folder>", text).group(1)  # type: ignore[union-attr]
        assert filename == path == xml.with_suffix(".png").name and folder == xml.parent.name
        image = read_png(xml.parent / filename)
        voc = parse_voc(xml)
        assert image.shape[:2] == (voc.height, voc.width)
        sop = NAME.fullmatch(xml.name).group("sop")  # type: ignore[union-attr]
        expected = LUNG.apply(read_hu(source[sop]))
        for channel in range(3):  # grey: the lung window, no box drawn
            assert np.array_equal(image[..., channel], expected)
    assert not (out / "png").exists()  # --save json,voc: no overlays


def test_a_hostile_header_never_becomes_a_path():
    result = SliceResult(patient_id="A0001", series_instance_uid="../../x",
                         sop_instance_uid="../../../etc/passwd", slice_index=3,
                         instance_number=-5, path="p", width=8, height=8,
                         series_number=10**12)
    stem = slice_stem(result)
    assert SAFE_NAME.fullmatch(stem) and not stem.startswith(".") and len(stem) < 120
    assert stem.startswith("sx-") and "_0003_ix_" in stem
    assert valid_path(f"voc/A0001/{stem}.xml") and valid_path(f"voc/A0001/{stem}.png")
    assert not valid_path(f"voc/A0001/{stem}.dcm") and not valid_path("png/A0001/x.xml")


REAL = REALDATA_ROOT / "lung-pet-ct-dx-A0002"


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real patient A0002 absent: {REAL} not found")
def test_real_a0002_names_both_series_in_slice_order_with_lung_window_images(
        tiny_run, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _predict(tiny_run[0].run_dir, REAL / "Lung-PET-CT-Dx", out, monkeypatch,
             (146.0, 285.0, 207.0, 335.0))
    slices = _rows(out / "slices.csv")
    assert len(slices) == 60 and {r["dicom_patient_id"] for r in slices} == {"Lung_Dx-A0002"}
    assert {r["patient_id"] for r in slices} == {"A0002"}
    assert {p.dicom_patient_id for p in read_predictions(out / "predictions.json")} == {
        "Lung_Dx-A0002"}
    names = sorted(p.name for p in (out / "voc" / "A0002").glob("*.xml"))
    assert len(names) == 60
    matches = [NAME.fullmatch(n) for n in names]
    assert all(m is not None for m in matches)
    series = [m.group("series") for m in matches]  # type: ignore[union-attr]
    assert series == ["0002"] * 30 + ["0003"] * 30  # the B70f series, then the B40f
    for half in (matches[:30], matches[30:]):
        assert [int(m.group("index")) for m in half] == list(range(30))  # type: ignore[union-attr]
        instances = [int(m.group("instance")) for m in half]  # type: ignore[union-attr]
        assert sorted(instances) == list(range(1, 31))
        assert instances in (sorted(instances), sorted(instances, reverse=True))
    by_sop = {r["sop_instance_uid"]: Path(r["path"]) for r in slices}
    for name, match in ((names[0], matches[0]), (names[45], matches[45])):
        image = read_png(out / "voc" / "A0002" / name.replace(".xml", ".png"))
        expected = LUNG.apply(read_hu(by_sop[match.group("sop")]))  # type: ignore[union-attr]
        for channel in range(3):  # the lung window, grey, nothing drawn on it
            assert np.array_equal(image[..., channel], expected)


def test_a_corrected_voc_folder_converts_like_the_archive(tiny_run, phantom, tmp_path,
                                                          monkeypatch):
    """predict → LabelImg (here: one box moved by hand) → convert, with predict's names."""
    from detect.convert import convert
    from detect.convert.config import ConvertConfig

    out = tmp_path / "out"
    _predict(tiny_run[0].run_dir, phantom.dicom_root, out, monkeypatch, (40.0, 40.0, 60.0, 60.0))
    xmls = sorted((out / "voc").rglob("*.xml"))
    moved = xmls[0]
    moved.write_text(moved.read_text().replace("<xmin>40</xmin>", "<xmin>30</xmin>"))
    dataset = tmp_path / "ds"
    convert(ConvertConfig(phantom.dicom_root, out / "voc", dataset, workers=1,
                          split=(1.0, 0.0, 0.0)))
    coco = json.loads((dataset / "coco" / "train.json").read_text())
    assert len(coco["images"]) == len(xmls) == 20  # every XML found its slice by its name
    boxes = {image["sop_instance_uid"]: [a["bbox"] for a in coco["annotations"]
                                         if a["image_id"] == image["id"]]
             for image in coco["images"]}
    assert boxes[NAME.fullmatch(moved.name).group("sop")] == [[30.0, 40.0, 30.0, 20.0]]  # type: ignore[union-attr]
    assert sum(b == [[40.0, 40.0, 20.0, 20.0]] for b in boxes.values()) == 19
