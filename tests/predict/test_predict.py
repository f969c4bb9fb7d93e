"""detect predict on DICOM folders: discovery, skipping, preprocessing, every writer."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from support.detectors import SquareFinder
from support.realdata import REALDATA_ROOT, real_patient
from support.yolo import NetGuard, write_ct_series

from detect.boxes import xyxy_to_voc
from detect.io.voc import parse_voc
from detect.predict.run import PredictConfig, predict
from detect.predictions import read_predictions
from detect.recipe import DEFAULT_RECIPE, ChannelRecipe, Window

REALDATA = REALDATA_ROOT / "lung-pet-ct-dx-A0002"
PET_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _variant(source: Path, target: Path, **changes: object) -> Path:
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(target, enforce_file_format=True)
    return target


def make_mixed_folder(root: Path) -> dict[str, object]:
    """Two CT series (two patients) plus one file of every kind predict must skip."""
    ct = write_ct_series(root / "p1" / "ct", patient_id="Lung_Dx-A0001", slices=5,
                         names=["e.dcm", "a.dcm", "d.dcm", "b.dcm", "c.dcm"])
    write_ct_series(root / "p2" / "weird name", patient_id="Lung_Dx-G0002", slices=3)
    bad = root / "p1" / "other"
    bad.mkdir()
    _variant(ct[0], bad / "pet.dcm", Modality="PT", SOPClassUID=PET_STORAGE)
    _variant(ct[0], bad / "fused.dcm", SOPClassUID=SECONDARY_CAPTURE, SamplesPerPixel=3,
             PhotometricInterpretation="RGB")
    _variant(ct[0], bad / "mr.dcm", Modality="MR")
    _variant(ct[0], bad / "nopixels.dcm", PixelData=None)
    _variant(ct[0], bad / "noimage.dcm", Rows=None, Columns=None, PixelData=None)
    shutil.copyfile(ct[1], bad / "copy-of-a.dcm")
    (bad / "notes.txt").write_text("not a DICOM file")
    expected = {"pet": 1, "fused": 1, "not-ct": 1, "pixel-error": 1, "unsupported-dicom": 1,
                "duplicate": 1, "not-dicom": 1}
    return {"skipped": expected}


def test_predict_writes_every_output_and_skips_what_it_cannot_use(tiny_run, tmp_path, monkeypatch):
    result, _ = tiny_run
    facts = make_mixed_folder(tmp_path / "in")
    out = tmp_path / "out"
    config = PredictConfig(sources=(tmp_path / "in",), weights=result.run_dir, out=out, conf=0.0,
                           save=("json", "voc", "png"), device="cpu", batch=3, workers=1)
    with NetGuard(monkeypatch) as guard:
        summary = predict(config)
    assert guard.attempts == []
    assert summary.skipped == facts["skipped"]
    assert summary.slices == 8  # 5 + 3 CT slices read; the one without pixels is skipped
    assert summary.series == 2
    predictions = read_predictions(out / "predictions.json")
    assert len(predictions) == summary.detections > 0  # conf 0: the untrained model answers
    for p in predictions:
        assert p.image_id is None and p.patient_id in ("A0001", "G0002")
        assert set(p.histology or {}) == {"A", "B", "E", "G"}
        assert sum((p.histology or {}).values()) == pytest.approx(1.0, abs=1e-4)
        assert 0 <= p.xyxy[0] < p.xyxy[2] <= 64 and 0 <= p.xyxy[1] < p.xyxy[3] <= 64
    by_sop: dict[str, list] = {}
    for p in predictions:
        by_sop.setdefault(p.sop_instance_uid, []).append(p)
    for sop, preds in by_sop.items():
        (xml,) = (out / "voc" / preds[0].patient_id).glob(f"*_{sop}.xml")
        voc = parse_voc(xml)
        assert [o.name for o in voc.objects] == [p.label for p in preds]
        assert [tuple(map(int, o.xyxy)) for o in voc.objects] == [xyxy_to_voc(p.xyxy)
                                                                   for p in preds]
        assert (voc.width, voc.height) == (64, 64)
        assert xml.with_suffix(".png").is_file()  # the image the XML names
        assert (out / "png" / preds[0].patient_id / xml.with_suffix(".png").name).is_file()
    summary_rows = _rows(out / "summary.csv")
    assert [(r["level"], r["patient_id"], r["slices_read"]) for r in summary_rows] == [
        ("series", "A0001", "5"), ("series", "G0002", "3"),
        ("patient", "A0001", "5"), ("patient", "G0002", "3")]
    assert len(_rows(out / "slices.csv")) == 8
    reasons = sorted(r["reason"] for r in _rows(out / "skipped.csv"))
    assert reasons == sorted(facts["skipped"])  # one file of each kind, each listed


def test_boxes_reach_the_voc_files_in_image_pixels(tiny_run, tmp_path, monkeypatch):
    result, _ = tiny_run
    write_ct_series(tmp_path / "in", slices=3, square=(20, 24),
                    names=["z.dcm", "x.dcm", "y.dcm"])
    finder = SquareFinder()
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: finder)
    out = tmp_path / "out"
    predict(PredictConfig(sources=(tmp_path / "in",), weights=result.run_dir, out=out,
                          device="cpu", workers=1))
    xmls = sorted((out / "voc" / "A0001").glob("*.xml"))
    assert len(xmls) == 3
    for xml in xmls:
        (obj,) = parse_voc(xml).objects
        assert obj.name == "A" and obj.xyxy == (20.0, 24.0, 36.0, 40.0)
    rows = _rows(out / "slices.csv")
    assert [r["instance_number"] for r in rows] == ["3", "2", "1"]  # by geometry, not name
    assert finder.images[0].shape == (64, 64, 3)
    hu = np.array([[-800.0, 40.0]], np.float32)
    expected = np.stack([w.apply(hu) for w in DEFAULT_RECIPE.windows], axis=-1)[0]
    assert finder.images[0][0, 0].tolist() == expected[0].tolist()  # background
    assert finder.images[0][24, 20].tolist() == expected[1].tolist()  # the square


def test_25d_recipe_puts_the_geometric_neighbours_in_the_channels(tiny_run, tmp_path, monkeypatch):
    result, _ = tiny_run
    run = tmp_path / "run"
    shutil.copytree(result.run_dir, run)
    lung = Window("lung", 1400.0, -700.0)
    model = json.loads((run / "model.json").read_text())
    model["recipe"] = ChannelRecipe("2.5d", (lung,), (-1, 0, 1)).to_dict()
    (run / "model.json").write_text(json.dumps(model))
    levels = [-1000.0, -900.0, -800.0, -700.0]  # slice k at z = -5k: sorted order is reversed
    write_ct_series(tmp_path / "in", slices=4, hu_levels=levels, square=None,
                    names=["b.dcm", "d.dcm", "a.dcm", "c.dcm"])
    finder = SquareFinder()
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: finder)
    predict(PredictConfig(sources=(tmp_path / "in",), weights=run, out=tmp_path / "out",
                          device="cpu", workers=1))
    ordered = levels[::-1]

    def value(i: int) -> int:
        return int(lung.apply(np.float32([ordered[min(max(i, 0), 3)]]))[0])

    seen = [image[5, 5].tolist() for image in finder.images]
    assert seen == [[value(i - 1), value(i), value(i + 1)] for i in range(4)]


@pytest.mark.skipif(not REALDATA.is_dir(), reason="real Lung-PET-CT-Dx sample not present")
def test_predict_on_the_real_sample_reports_every_slice(tiny_run, tmp_path, monkeypatch):
    result, _ = tiny_run
    out = tmp_path / "out"
    config = PredictConfig(sources=(REALDATA,), weights=result.run_dir, out=out, conf=0.5,
                           device="cpu", workers=2, batch=16)
    with NetGuard(monkeypatch) as guard:
        summary = predict(config)
    assert guard.attempts == []
    assert (summary.files_seen, summary.series, summary.slices) == (80, 2, 60)
    assert summary.skipped == {"not-dicom": 20}  # the XML, CSV and README beside the DICOM
    rows = _rows(out / "slices.csv")
    assert len(rows) == 60 and {r["patient_id"] for r in rows} == {"A0002"}
    for uid in {r["series_instance_uid"] for r in rows}:
        numbers = [int(r["instance_number"]) for r in rows if r["series_instance_uid"] == uid]
        assert sorted(numbers) == list(range(1, 31))
    series = [r for r in _rows(out / "summary.csv") if r["level"] == "series"]
    assert sorted(r["series_description"] for r in series) == [
        "ThoraxRoutine  8.0.0  B40f", "ThoraxRoutine  8.0.0  B70f"]
    assert all(r["slices_read"] == "30" for r in series)
    assert read_predictions(out / "predictions.json") == []  # an untrained model at conf 0.5


def test_synth_convert_train_predict_chain(tiny_run, tiny_cohort, tmp_path, monkeypatch):
    """End to end: phantom DICOM tree → (convert → train: the session run) → predict on
    the raw tree, where PET and fused screenshots sit beside the CT series."""
    result, _ = tiny_run
    out = tmp_path / "out"
    config = PredictConfig(sources=(tiny_cohort.dicom_root,), weights=result.run_dir, out=out,
                           conf=0.0, save=("json", "voc"), device="cpu", workers=1)
    with NetGuard(monkeypatch) as guard:
        summary = predict(config)
    assert guard.attempts == []
    patients = tiny_cohort.patients
    assert summary.slices == sum(p.ct_slices for p in patients)
    skipped = {"pet": sum(p.pet_slices for p in patients),
               "fused": sum(p.fused_images for p in patients)}
    assert summary.skipped == {k: v for k, v in skipped.items() if v}
    series = [r for r in _rows(out / "summary.csv") if r["level"] == "series"]
    assert sorted(r["patient_id"] for r in series) == sorted(p.patient_id for p in patients)
    assert all(int(r["slices_read"]) == 12 for r in series)
    predictions = read_predictions(out / "predictions.json")
    assert {p.patient_id for p in predictions} == {p.patient_id for p in patients}
    sops = {p.sop_instance_uid for p in predictions}
    assert len(list((out / "voc").rglob("*.xml"))) == len(sops)


def test_parallel_scan_and_render_give_the_serial_results(tmp_path):
    from detect.predict.sources import bounded_map, render_job, scan_sources, slice_jobs

    write_ct_series(tmp_path / "in", slices=5, names=["c", "a", "e", "b", "d"])
    (tmp_path / "in" / "junk.bin").write_bytes(b"\0" * 300)
    serial = scan_sources([tmp_path / "in"], workers=1)
    parallel = scan_sources([tmp_path / "in"], workers=2, min_parallel=1)
    assert parallel == serial and len(serial.series[0].slices) == 5
    jobs = slice_jobs(serial.series[0], DEFAULT_RECIPE, lung=True)
    one = [render_job(job) for job in jobs]
    two = list(bounded_map(render_job, iter(jobs), workers=2, window=2))
    assert [r.index for r in two] == [0, 1, 2, 3, 4]
    for a, b in zip(one, two):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.lung, b.lung)


def test_a_25d_stream_decodes_each_slice_once_with_the_same_images(tmp_path, monkeypatch):
    from detect.predict import sources
    from detect.recipe import parse_channels

    write_ct_series(tmp_path / "in", slices=6)
    series = sources.scan_sources([tmp_path / "in"], workers=1).series[0]
    jobs = sources.slice_jobs(series, parse_channels("2.5d:wide"), lung=True)
    plain = [sources.render_job(job) for job in jobs]
    decoded: list[str] = []
    real_read = sources.read_hu

    def counting_read(path, **kwargs):
        decoded.append(str(path))
        return real_read(path, **kwargs)

    monkeypatch.setattr(sources, "read_hu", counting_read)
    render = sources.SliceRenderer(parse_channels("2.5d:wide"))
    cached = list(sources.bounded_map(render, iter(jobs), workers=1, window=2))
    assert sorted(decoded) == sorted(str(s.path) for s in series.slices)  # once each
    for a, b in zip(plain, cached, strict=True):
        assert a.index == b.index
        assert np.array_equal(a.image, b.image) and np.array_equal(a.lung, b.lung)
    # without the renderer, every slice also decodes its two neighbours
    decoded.clear()
    [sources.render_job(job) for job in jobs]
    assert len(decoded) == 3 * len(jobs)


def test_a_models_step_in_mm_sets_the_neighbours_predict_stacks(tmp_path):
    """A model whose recipe says 5 mm, on a 1.25 mm series: slices 4 places away."""
    from detect.predict import sources
    from detect.recipe import parse_channels

    paths = write_ct_series(tmp_path / "in", slices=12)
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [0.0, 0.0, -1.25 * k]
        ds.SliceThickness = "1.25"
        ds.save_as(path, enforce_file_format=True)
    series = sources.scan_sources([tmp_path / "in"], workers=1).series[0]
    z = {str(s.path): s.position[2] for s in series.slices}  # type: ignore[index]
    for recipe, gap in (("2.5d:wide:5mm", 5.0), ("2.5d:wide", 1.25)):
        jobs = sources.slice_jobs(series, parse_channels(recipe), lung=False)
        middle = jobs[6]
        centre = dict(middle.neighbours)[0]
        assert sorted(round(z[path] - z[centre], 2) for offset, path in middle.neighbours
                      if offset != 0) == [-gap, gap], recipe


def test_a_series_of_three_contrast_phases_renders_each_phase_from_its_own_slices(
        tmp_path, monkeypatch):
    """B0021's series 2 holds three acquisitions at every position: a 2.5d slice's
    neighbours are its own phase 5 mm away, and each file is still decoded once."""
    from dataclasses import replace

    from detect.predict import sources
    from detect.recipe import parse_channels

    folder = real_patient("B0021")
    (series_dir,) = folder.glob("Lung-PET-CT-Dx/*/*/2.000000-*")
    series = sources.scan_sources([series_dir], workers=1).series[0]
    assert len(series.slices) == 168
    first = sorted({s.position[2] for s in series.slices})[-4:]  # type: ignore[index]
    series = replace(series, slices=tuple(
        s for s in series.slices if s.position[2] in first))  # type: ignore[index]
    assert len(series.slices) == 12
    recipe = parse_channels("2.5d:wide")
    jobs = sources.slice_jobs(series, recipe, lung=False)
    by_path = {str(s.path): s for s in series.slices}
    for job, centre in zip(jobs, series.slices, strict=True):
        flank = [by_path[path] for offset, path in job.neighbours if offset != 0]
        assert {s.acquisition_number for s in flank} == {centre.acquisition_number}
        assert all(abs(s.position[2] - centre.position[2]) in (0.0, 5.0)  # type: ignore[index]
                   for s in flank)
    decoded: list[str] = []
    real_read = sources.read_hu

    def counting_read(path, **kwargs):
        decoded.append(str(path))
        return real_read(path, **kwargs)

    monkeypatch.setattr(sources, "read_hu", counting_read)
    render = sources.SliceRenderer(recipe)
    images = list(sources.bounded_map(render, iter(jobs), workers=1, window=2))
    assert sorted(decoded) == sorted(by_path)  # once each
    assert all(r.error is None for r in images)


def test_names_from_headers_cannot_leave_the_output_folder(tiny_run, tmp_path, monkeypatch):
    from detect.predict.writers import safe_name

    for hostile in ("../../etc/passwd", "..", "/etc/x", "a\\b"):
        name = safe_name(hostile)
        assert "/" not in name and "\\" not in name and not name.startswith(".")
    assert safe_name(" ") == "unknown" and safe_name("Lung_Dx-A0002") == "Lung_Dx-A0002"
    assert safe_name("a/b") != safe_name("a_b")  # distinct values never share a file
    result, _ = tiny_run
    write_ct_series(tmp_path / "in", patient_id="../../../escaped", slices=2)
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: SquareFinder())
    out = tmp_path / "deep" / "out"
    predict(PredictConfig(sources=(tmp_path / "in",), weights=result.run_dir, out=out,
                          save=("json", "voc"), device="cpu", workers=1))
    written = [p for p in tmp_path.rglob("*.xml")]
    assert len(written) == 2 and all(out in p.parents for p in written)
    assert {p.parent.name for p in written} == {safe_name("../../../escaped")}
