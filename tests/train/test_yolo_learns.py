"""A YOLO trained by detect learns the phantom tumours (slow: a few minutes on 2 CPU cores).

Measured (2026-11-24, 2 idle cores): 185 s; best epoch 55 of 100, val mAP50 0.54,
mAP50-95 0.32 (11 train / 3 val patients, 49 / 13 slices); a 40-epoch probe reached 0.14.
"""

from __future__ import annotations

from pathlib import Path

import pytest

EPOCHS = 100


@pytest.mark.slow
@pytest.mark.timeout(3600)  # minutes of CPU training; the default 600 s is for hangs
def test_yolo_learns_the_phantom_tumours(tmp_path: Path, yolo_env: Path) -> None:
    from detect.convert import convert
    from detect.convert.config import ConvertConfig
    from detect.dataset import load_dataset
    from detect.eval import evaluate_predictions
    from detect.predict.split import predict_split
    from detect.synth.cohort import SynthConfig, synthesize
    from detect.train import TrainConfig, train

    cohort = synthesize(tmp_path / "cohort",
                        SynthConfig(patients=16, slices=24, size=256, seed=1, fused=False))
    convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, tmp_path / "data",
                          class_mode="tumor", workers=2))
    dataset = load_dataset(tmp_path / "data")
    result = train(TrainConfig(model="yolov8", data=dataset.root, epochs=EPOCHS, imgsz=256,
                               batch=16, device="cpu", project=tmp_path / "runs", workers=2))
    # chance is ~0: a box must overlap a 5-20 px tumour on a 256 px slice by IoU >= 0.5
    assert result.metrics["mAP50"] >= 0.25, result.metrics
    predictions = predict_split(result.run_dir, dataset, "val", device="cpu")
    scored = evaluate_predictions(dataset, "val", predictions, bootstrap=0)
    assert scored.map50 is not None and scored.map50 >= 0.25, scored.map50
