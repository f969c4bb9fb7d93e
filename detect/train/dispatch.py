"""``detect train``: one entry per model family, all writing the same run folder
(contract 3: ``project/<model>/<name>/`` with weights/best.pt, last.pt, model.json,
metrics.csv). :func:`train` looks the family up in :data:`TRAINERS`:

- ``yolov8``, ``yolo11``: :mod:`detect.train.yolo` (ultralytics' public API);
- ``fasterrcnn``: :mod:`detect.train.frcnn` (torchvision; one process, spawned CPU
  processes on gloo, or torchrun on GPUs);
- ``histology``: the A/B/E/G head on tumour crops, :mod:`detect.train.histology`
  (``--imgsz`` is its crop size, default 64 px; ``--backbone`` resnet18 or
  mobilenet_v3_small; ``--size`` and ``--amp`` do not apply to it).

``--class-weighting auto`` is ``none`` for the detectors and ``loss`` for the histology
head (inverse-frequency weighted cross-entropy; see :mod:`detect.train.histology.config`).
"""

from __future__ import annotations

from collections.abc import Callable

from detect.train.frcnn.config import FasterRCNNConfig
from detect.train.frcnn.launch import train_fasterrcnn
from detect.train.histology.config import HistologyConfig
from detect.train.histology.loop import train_histology
from detect.train.options import EpochProgress, TrainConfig, TrainResult
from detect.train.yolo import train_yolo

Trainer = Callable[[TrainConfig, "EpochProgress | None"], TrainResult]


def _faster_rcnn(config: TrainConfig, on_epoch: EpochProgress | None) -> TrainResult:
    return train_fasterrcnn(FasterRCNNConfig.from_train_config(config), on_epoch)


def _histology(config: TrainConfig, on_epoch: EpochProgress | None) -> TrainResult:
    return train_histology(HistologyConfig.from_train_config(config), on_epoch)


#: ``--model`` -> the function that trains it.
TRAINERS: dict[str, Trainer] = {
    "yolov8": train_yolo,
    "yolo11": train_yolo,
    "fasterrcnn": _faster_rcnn,
    "histology": _histology,
}


def train(config: TrainConfig, on_epoch: EpochProgress | None = None) -> TrainResult:
    """Train one model into a run folder (module docstring).

    Raises:
        DetectError: dataset or option problems (one line each).
        KeyboardInterrupt: passed on; the run folder stays resumable.
    """
    return TRAINERS[config.model](config, on_epoch)
