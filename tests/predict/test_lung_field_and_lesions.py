"""detect predict with the lung field and lesions on a phantom patient: a box outside the
body is dropped on every slice and counted (slices.csv, summary.csv), a box in a lung is
kept and linked into one lesion with its measurements in mm (lesions.json, lesions.csv);
``--lung-field off`` keeps everything; a bad ``--lung-field`` is one line of error."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from support.detectors import FixedBoxes
from support.lungs import boxes_in_field
from typer.testing import CliRunner

from detect.cli import app
from detect.predict.run import PredictConfig, predict
from detect.synth.cohort import SynthConfig, synthesize

CORNER = ((0.0, 0.0, 16.0, 16.0), 0.9)  # outside the body on every slice


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """One phantom patient, 20 slices of 256 px, and its tumour's largest box."""
    made = synthesize(tmp_path_factory.mktemp("phantom"), SynthConfig(
        patients=1, slices=20, size=256, seed=5, letter_mix={"A": 1}, fused=False,
        compression="none"))
    boxes = boxes_in_field(made.dicom_root, made.annotation_root)
    tumour = max(boxes, key=lambda b: (b.xyxy[2] - b.xyxy[0]) * (b.xyxy[3] - b.xyxy[1]))
    return made, tumour


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _run(tiny_run, phantom, out: Path, monkeypatch, **options) -> None:
    made, tumour = phantom
    fake = FixedBoxes([CORNER, (tumour.xyxy, 0.8)])
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: fake)
    predict(PredictConfig(sources=(made.dicom_root,), weights=tiny_run[0].run_dir, out=out,
                          save=("json", "voc"), device="cpu", workers=1, **options))


def test_boxes_outside_the_lung_field_are_dropped_and_counted(tiny_run, phantom, tmp_path,
                                                               monkeypatch):
    out = tmp_path / "out"
    _run(tiny_run, phantom, out, monkeypatch)
    slices = _rows(out / "slices.csv")
    assert len(slices) == 20
    assert all(r["outside_lung"] in ("1", "2") for r in slices)  # the corner, everywhere
    kept = [r for r in slices if r["detections"] == "1"]
    assert kept and all(r["outside_lung"] == "1" for r in kept)
    (series,) = [r for r in _rows(out / "summary.csv") if r["level"] == "series"]
    assert series["lung_field"] == "on"
    assert int(series["outside_lung"]) == sum(int(r["outside_lung"]) for r in slices)
    assert int(series["lesions"]) == 1
    predictions = json.loads((out / "predictions.json").read_text())
    assert len(predictions) == len(kept)
    assert all(p["xyxy"][0] > 16 for p in predictions)  # no corner box survived
    # the tumour's own slice is never dropped: it is in the lungs
    tumour = phantom[1]
    assert any(p["sop_instance_uid"] == tumour.sop_instance_uid for p in predictions)


def test_the_kept_boxes_are_one_lesion_with_measurements(tiny_run, phantom, tmp_path,
                                                         monkeypatch):
    out = tmp_path / "out"
    _run(tiny_run, phantom, out, monkeypatch)
    document = json.loads((out / "lesions.json").read_text())
    assert document["format"] == "detect-lesions"
    assert document["lung_field"]["rule"] == "hu-air-inside-body"
    assert document["link"]["rule"] == "link-overlapping-slices"
    (series,) = document["series"]
    assert series["linked_in"] == "mm" and series["lung_field"] == "on"
    (lesion,) = series["lesions"]
    made, tumour = phantom
    record = json.loads((made.dicom_root.parent / "synth.json").read_text())
    patient = record["patients"][0]
    spacing, thickness = patient["pixel_spacing_mm"], patient["slice_thickness_mm"]
    x1, y1, x2, y2 = tumour.xyxy
    assert lesion["longest_axial_diameter_mm"] == pytest.approx(
        max(x2 - x1, y2 - y1) * spacing, rel=1e-3)
    slices = lesion["slice_indices"]
    assert slices == list(range(slices[0], slices[-1] + 1))  # contiguous here
    assert lesion["craniocaudal_extent_mm"] == pytest.approx(len(slices) * thickness, rel=1e-3)
    assert lesion["score"] == pytest.approx(0.8, abs=1e-4)
    (row,) = _rows(out / "lesions.csv")
    assert int(row["slices"]) == len(slices) and row["lesion"] == "1"
    assert float(row["z2_mm"]) - float(row["z1_mm"]) == pytest.approx(
        lesion["craniocaudal_extent_mm"], abs=0.02)


def test_lung_field_off_keeps_every_box(tiny_run, phantom, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _run(tiny_run, phantom, out, monkeypatch, lung_field="off")
    slices = _rows(out / "slices.csv")
    assert all(r["detections"] == "2" and r["outside_lung"] == "0" for r in slices)
    (series,) = [r for r in _rows(out / "summary.csv") if r["level"] == "series"]
    assert series["lung_field"] == "off" and series["lesions"] == "2"
    document = json.loads((out / "lesions.json").read_text())
    assert document["lung_field"] is None


def test_the_lung_field_is_the_models_unless_asked(tiny_run, phantom, tmp_path, monkeypatch):
    import json
    import shutil

    trained = json.loads((tiny_run[0].run_dir / "model.json").read_text())
    assert trained["postprocess"]["lung_field"]["rule"] == "hu-air-inside-body"
    older = tmp_path / "older-run"  # a model trained before the lung field: off for it
    shutil.copytree(tiny_run[0].run_dir, older)
    del trained["postprocess"]
    (older / "model.json").write_text(json.dumps(trained))
    made, tumour = phantom
    fake = FixedBoxes([CORNER, (tumour.xyxy, 0.8)])
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: fake)
    for mode, expected in (("model", "off"), ("on", "on")):
        out = tmp_path / mode
        predict(PredictConfig(sources=(made.dicom_root,), weights=older, out=out,
                              save=("json",), device="cpu", workers=1, lung_field=mode))
        (series,) = [r for r in _rows(out / "summary.csv") if r["level"] == "series"]
        assert series["lung_field"] == expected


def test_a_bad_lung_field_option_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["predict", str(tmp_path), "--weights", str(tmp_path),
                                      "--lung-field", "maybe"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: --lung-field takes model, on, off, got 'maybe'"


def test_a_series_without_lungs_keeps_its_boxes_and_says_why(tiny_run, tmp_path, monkeypatch):
    from support.detectors import SquareFinder
    from support.yolo import write_ct_series

    write_ct_series(tmp_path / "in", slices=3)  # -800 HU everywhere: no body, no lungs
    monkeypatch.setattr("detect.predict.run.load_detector", lambda *a, **k: SquareFinder())
    out = tmp_path / "out"
    predict(PredictConfig(sources=(tmp_path / "in",), weights=tiny_run[0].run_dir, out=out,
                          save=("json",), device="cpu", workers=1))
    (series,) = [r for r in _rows(out / "summary.csv") if r["level"] == "series"]
    assert series["lung_field"] == ("unavailable: no air inside the body on any slice "
                                    "(no lungs found)")
    assert series["detections"] == "3" and series["outside_lung"] == "0"
