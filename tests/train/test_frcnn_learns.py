"""A Faster R-CNN trained by detect learns the phantom tumours (slow: minutes on 2 CPU cores).

The same cohort as tests/test_yolo_learns.py (16 patients, tumour class, 256 px; 49 train /
13 val slices), the CPU backbone, from scratch, 20 epochs.

Measured (2026-11-24, 2 cores): 298 s; best epoch 13, val mAP50 0.26, mAP50-95 0.06. Before
the RPN threshold, anchors and mobilenet FPN were fitted to CT (checkpoint version 1), the
same kind of run stayed at 0.000. The threshold sits below the measured value because the
run is deterministic on one machine but not bit-identical across CPUs.

Those figures predate two changes. (1) The BatchNorm re-estimate before each validation
(:func:`detect.models.faster_rcnn.engine.precise_bn`), the fix for the score that moved
between machines (0.26 there, 0.12 elsewhere): validation normalised with stale running
averages, so tiny numeric differences decided what the RPN proposed. With it alone (seed
0, 2026-12-07, 1161 s at load 2-4): 0.000 to epoch 7, best 0.131 at epoch 16, below 0.15.
(2) mobilenet's base learning rate doubled (``BASE_LR_PER_16`` 0.04 -> 0.08, lr 0.02 ->
0.04 at batch 8): 140 iterations from scratch were too few at the old rate. Measured with both
(2026-12-07, one thread each beside other trainings, load about 4):

- seed 0: best val mAP50 0.419 at epoch 16 (0.29 at epoch 10, 0.41 at 20), 1230 s;
- seed 1: 0.346 at epoch 15 (0.26 at 10, 0.31 at 19), 1216 s;
- seed 2: 0.397 at epoch 19 (0.04 at 10, 0.28 at 12), 853 s.

The test itself (seed 0, workers 2) passed in 1354 s beside them, and in 492 s on idle
cores (2026-12-07, the first test of `pytest -m slow`).

The threshold stays 0.15, 0.20 below the worst seed (0.346); chance is ~0.
"""

from __future__ import annotations

from pathlib import Path

import pytest

EPOCHS = 20


@pytest.mark.slow
@pytest.mark.timeout(3600)  # minutes of CPU training; the default 600 s is for hangs
def test_fasterrcnn_learns_the_phantom_tumours(tmp_path: Path) -> None:
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
    result = train(TrainConfig(model="fasterrcnn", backbone="mobilenet_v3_large_fpn",
                               data=dataset.root, epochs=EPOCHS, imgsz=256, batch=8,
                               device="cpu", project=tmp_path / "runs", workers=2))
    # chance is ~0: a box must overlap a 5-20 px tumour on a 256 px slice by IoU >= 0.5
    assert result.metrics["mAP50"] >= 0.15, result.metrics
    predictions = predict_split(result.run_dir, dataset, "val", device="cpu")
    scored = evaluate_predictions(dataset, "val", predictions, bootstrap=0)
    assert scored.map50 is not None and scored.map50 >= 0.15, scored.map50
