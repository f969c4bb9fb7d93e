"""detect.eval.evaluate: the public API end to end on tiny hand-made datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.evaluation import Slice, gt_as_predictions, prediction, write_dataset
from typer.testing import CliRunner

from detect.boxes import iou
from detect.cli import app
from detect.errors import ConfigError, RunFolderError
from detect.eval import (
    EvalConfig,
    check_leakage,
    evaluate_predictions,
    write_report,
)
from detect.eval.froc import FROC_RATES
from detect.predictions import write_predictions

SLICES = [
    Slice("A0001", "1", [((10, 10, 30, 30), "A")]),
    Slice("A0001", "1", [((12, 12, 32, 30), "A")]),
    Slice("A0001", "1"),  # a negative slice of the same series
    Slice("B0002", "1", [((5, 5, 25, 35), "B"), ((40, 8, 52, 20), "B")]),
    Slice("E0003", "1", [((30, 30, 50, 44), "E")]),
    Slice("G0004", "7", [((8, 40, 24, 56), "G")]),
    Slice("G0004", "8", []),  # a second series of G0004 without tumour
]


@pytest.fixture
def tiny(tmp_path: Path):
    return write_dataset(tmp_path / "data", SLICES)


def test_ground_truth_as_predictions_is_perfect(tiny):
    result = evaluate_predictions(tiny, "test", gt_as_predictions(tiny), bootstrap=20)
    assert result.map50 == pytest.approx(1.0, abs=1e-9)
    assert result.map50_95 == pytest.approx(1.0, abs=1e-9)
    assert result.ap10 == pytest.approx(1.0, abs=1e-9)
    assert result.froc["sensitivity"] == [1.0] * len(FROC_RATES)
    assert result.froc_mean == 1.0
    assert result.patient_sensitivity == 1.0
    assert result.per_patient["patients_with_tumour"] == 4
    assert result.froc["scans"] == 5  # series with a slice in the split, tumour or not
    assert result.froc["lesions"] == sum(len(s.boxes) for s in SLICES)
    assert result.histology["detector"]["patient"]["balanced_accuracy"] == 1.0
    assert result.counts["predictions_outside_split"] == 0


def test_half_width_shift_fails_iou_half_but_passes_iou_tenth(tiny):
    # A box shifted right by w/2 overlaps its original on w/2 x h; union = 2wh - wh/2.
    w, h = 20.0, 20.0
    expected_iou = (w / 2 * h) / (2 * w * h - w / 2 * h)
    assert expected_iou == pytest.approx(1 / 3)
    assert iou((0, 0, w, h), (w / 2, 0, w + w / 2, h)) == pytest.approx(expected_iou)
    result = evaluate_predictions(tiny, "test", gt_as_predictions(tiny, shift=0.5),
                                  bootstrap=0)
    assert result.map50 == (1.0 if expected_iou >= 0.5 else 0.0)
    assert result.ap10 == pytest.approx(1.0 if expected_iou >= 0.1 else 0.0, abs=1e-9)
    assert result.map50_95 == 0.0
    assert result.froc_mean == 1.0  # FROC hits at IoU >= 0.1


def test_predictions_outside_the_split_are_counted_not_scored(tiny, tmp_path):
    other = write_dataset(tmp_path / "other", [Slice("B0009", "3", [((1, 1, 9, 9), "B")])])
    foreign = gt_as_predictions(other)
    result = evaluate_predictions(tiny, "test", gt_as_predictions(tiny) + foreign, bootstrap=0)
    assert result.counts["predictions_outside_split"] == len(foreign)
    assert result.counts["predictions_outside_split_examples"] == [foreign[0].sop_instance_uid]
    assert result.map50 == pytest.approx(1.0, abs=1e-9)  # not counted as false positives


def test_record_without_sop_uid_falls_back_to_image_id(tiny):
    coco = tiny.load_coco("test")
    image = coco["images"][0]
    x, y, w, h = coco["annotations"][0]["bbox"]
    record = prediction(image, (x, y, x + w, y + h), 0.9, "A")
    by_id = type(record)(**{**record.__dict__, "sop_instance_uid": "", "image_id": image["id"]})
    result = evaluate_predictions(tiny, "test", [by_id], bootstrap=0)
    assert result.counts["predictions_in_split"] == 1
    assert result.froc["hits"] == 1


LEAKY = [Slice("A0001", "1", [((10, 10, 30, 30), "A")]),
         Slice("G0004", "7", [((8, 40, 24, 56), "G")])]


def test_leakage_guard_names_the_overlap_and_allow_leak_marks_the_report(tmp_path):
    dataset = write_dataset(tmp_path / "data", LEAKY, train=("A0001", "B0005"))
    model_json = {"format": "detect-model",
                  "dataset": {"splits": {"train": ["A0001", "B0005"], "val": [], "test": []}}}
    with pytest.raises(RunFolderError) as info:
        check_leakage(model_json, dataset, "test", allow_leak=False)
    message = str(info.value)
    assert "\n" not in message
    assert "1 of 2 test patients" in message and "A0001" in message
    assert "B0005" not in message and "--allow-leak" in message
    assert check_leakage(model_json, dataset, "test", allow_leak=True) == ["A0001"]
    with pytest.raises(RunFolderError):
        evaluate_predictions(dataset, "test", [], train_patients=["A0001"])
    result = evaluate_predictions(dataset, "test", gt_as_predictions(dataset),
                                  train_patients=["Lung_Dx-A0001"], allow_leak=True, bootstrap=0)
    assert result.leak == {"checked": True, "allowed": True, "patients": ["A0001"]}
    files = write_report(result, tmp_path / "eval", dataset)
    assert "LEAKAGE: 1 patients" in files["report_md"].read_text()
    assert "LEAKAGE" in files["report_html"].read_text()
    assert json.loads(files["metrics"].read_text())["leak"]["patients"] == ["A0001"]


def test_leakage_cannot_be_checked_without_training_patients(tmp_path):
    dataset = write_dataset(tmp_path / "data", LEAKY)
    model_json = {"format": "detect-model", "dataset": {"fingerprint": "0" * 64}}
    with pytest.raises(RunFolderError, match="--allow-leak"):
        check_leakage(model_json, dataset, "test", allow_leak=False)
    assert check_leakage(model_json, dataset, "test", allow_leak=True) == []
    same_data = {"dataset": {"fingerprint": dataset.fingerprint}}  # trained on this dataset
    assert check_leakage(same_data, dataset, "test", allow_leak=False) == []


def test_write_report_writes_the_real_numbers(tmp_path):
    dataset = write_dataset(tmp_path / "data", SLICES, images=True)
    coco = dataset.load_coco("test")
    preds = gt_as_predictions(dataset, score=0.8, histology=True)[1:]  # one tumour missed
    preds.append(prediction(coco["images"][2], (40, 40, 60, 60), 0.95, "B"))  # a false positive
    result = evaluate_predictions(dataset, "test", preds, bootstrap=50, seed=3)
    files = write_report(result, tmp_path / "eval", dataset)
    for name in ("metrics", "report_md", "report_html", "pr_curves", "froc",
                 "confusion_detector", "confusion_head", "false_positives", "missed"):
        assert files[name].is_file() and files[name].stat().st_size > 0, name
    metrics = json.loads(files["metrics"].read_text())
    assert metrics == json.loads(json.dumps(result.to_dict()))
    assert metrics["detection"]["map50"] == result.map50 and 0 < result.map50 < 1
    assert metrics["ci"]["metrics"]["froc_mean"]["value"] == result.froc_mean
    assert metrics["gallery"]["false_positives"][0]["score"] == 0.95
    assert metrics["gallery"]["missed_at_conf"] == 1
    markdown = files["report_md"].read_text()
    assert f"| mAP50 (COCO) | {result.map50:.3f} |" in markdown
    assert "E (1 patients)" in markdown  # patient counts beside per-letter numbers
    page = files["report_html"].read_text()
    assert page.count("data:image/png;base64,") >= 5 and 'src="http' not in page
    assert f"{result.froc_mean:.3f}" in page


def test_report_without_images_says_so(tiny, tmp_path):
    preds = gt_as_predictions(tiny, shift=3.0)  # all miss
    result = evaluate_predictions(tiny, "test", preds, bootstrap=0)
    files = write_report(result, tmp_path / "eval", tiny)
    assert "missed" not in files
    assert "images not found" in files["report_md"].read_text()


def test_eval_config_is_validated(tmp_path):
    with pytest.raises(ConfigError, match="exactly one of"):
        EvalConfig(data=tmp_path)
    with pytest.raises(ConfigError, match="--split"):
        EvalConfig(data=tmp_path, predictions=tmp_path / "p.json", split="dev")
    with pytest.raises(ConfigError, match="--iou-froc"):
        EvalConfig(data=tmp_path, predictions=tmp_path / "p.json", iou_froc=0.0)
    config = EvalConfig(data=tmp_path, predictions=tmp_path / "p" / "p.json")
    assert config.out_dir == tmp_path / "p" / "eval-test"


def test_cli_eval_writes_the_report(tiny, tmp_path):
    preds = gt_as_predictions(tiny, shift=0.5)
    path = tmp_path / "preds.json"
    write_predictions(path, preds)
    out = tmp_path / "eval"
    runner = CliRunner()
    done = runner.invoke(app, ["eval", "--predictions", str(path), "--data", str(tiny.root),
                               "--out", str(out), "--bootstrap", "30"])
    assert done.exit_code == 0, done.output
    metrics = json.loads((out / "metrics.json").read_text())
    direct = evaluate_predictions(tiny, "test", preds, bootstrap=30)
    assert metrics["detection"]["ap10"] == direct.ap10
    assert metrics["ci"] == json.loads(json.dumps(direct.ci))
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    missing = runner.invoke(app, ["eval", "--predictions", str(path), "--data",
                                  str(tmp_path / "nope"), "--out", str(out)])
    assert missing.exit_code == 1
    assert "dataset folder not found" in missing.output
    assert len(missing.output.strip().splitlines()) == 1


def test_cli_eval_weights_refuses_leakage_before_predicting(tmp_path):
    dataset = write_dataset(tmp_path / "data", LEAKY, train=("A0001",))
    run = tmp_path / "runs" / "yolov8" / "x"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "best.pt").write_bytes(b"not a checkpoint")
    demo = json.loads((Path(__file__).resolve().parents[2] / "weights" /
                       "demo-yolov8n-phantom" / "model.json").read_text())
    demo["dataset"]["splits"] = {"train": ["A0001"]}
    (run / "model.json").write_text(json.dumps(demo))
    done = CliRunner().invoke(app, ["eval", "--weights", str(run / "weights" / "best.pt"),
                                    "--data", str(dataset.root)])
    assert done.exit_code == 1
    assert "A0001" in done.output and "--allow-leak" in done.output
    assert not (run / "eval-test").exists()


def test_end_to_end_on_the_converted_phantom(request):
    from detect.dataset import load_dataset

    info = load_dataset(request.getfixturevalue("dataset"))
    split = next(s for s in ("test", "val", "train") if info.load_coco(s)["annotations"])
    result = evaluate_predictions(info, split, gt_as_predictions(info, split), bootstrap=10)
    assert result.map50 == pytest.approx(1.0, abs=1e-9)
    assert result.patient_sensitivity == 1.0
    assert result.froc["scans"] >= 1


def test_eval_never_imports_a_model(tiny, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "preds.json"
    write_predictions(path, gt_as_predictions(tiny, score=0.7))
    args = ["eval", "--predictions", str(path), "--data", str(tiny.root), "--out",
            str(tmp_path / "eval"), "--bootstrap", "5"]
    code = (
        "import sys\nfrom detect.cli import main\ntry:\n    main(sys.argv[1:])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print(sorted(m for m in ('torch', 'ultralytics', 'torchvision') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "eval" / "report.html").is_file()
