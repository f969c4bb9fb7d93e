"""``detect train``: resolve the options into the family's config
(:meth:`detect.models.registry.TrainConfig.resolve`) and run the family's trainer
into a run folder (contract 3, ``project/<family>/<name>/``), handing it the evaluator's
scoring (:class:`~detect.models.training.TrainServices`): validation mAP for the
detectors, balanced accuracy for the histology head. ``eval`` sits beside ``train`` above
``models/``, so a family's trainer gets it from here and never imports it."""

from __future__ import annotations

from collections.abc import Sequence

from detect.dataset import DatasetInfo, load_dataset
from detect.errors import DatasetError
from detect.eval.histology import balanced_accuracy as balanced_accuracy_of
from detect.eval.histology import confusion
from detect.eval.operating import DEFAULT_TARGET, check_target
from detect.eval.score import evaluate_predictions
from detect.models.family import DETECTOR
from detect.models.registry import TrainConfig, family_for
from detect.models.training import (
    BatchProgress,
    EpochProgress,
    RunOptions,
    TrainResult,
    TrainServices,
)
from detect.predictions import Prediction
from detect.torch_check import require_training_packages
from detect.train.operating import set_operating_point


def score_detections(dataset: DatasetInfo, split: str, predictions: Sequence[Prediction]
                     ) -> dict[str, float]:
    """COCO mAP50 and mAP50-95 of ``predictions`` on ``split`` (no bootstrap)."""
    scored = evaluate_predictions(dataset, split, predictions, bootstrap=0)
    return {"mAP50": float(scored.map50 or 0.0), "mAP50-95": float(scored.map50_95 or 0.0)}


def balanced_accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Balanced accuracy of A/B/E/G calls (NaN when there is no truth)."""
    return balanced_accuracy_of(confusion(truth, predicted))


SERVICES = TrainServices(score_detections=score_detections, balanced_accuracy=balanced_accuracy)


#: A detector trained from scratch on fewer training images than this learned nothing in
#: its first epochs on two real patients (yolov8n, 143 images: mAP50 0.000 for epochs 1-7);
#: from the shipped phantom checkpoint it did (weights/real-yolov8n/CARD.md).
SMALL_TRAIN_IMAGES = 300


def scratch_warning(config: TrainConfig) -> str | None:
    """The warning for a detector about to train from scratch on a small dataset (fewer
    than :data:`SMALL_TRAIN_IMAGES` training images, no ``--weights``), or None. The
    command line prints it; library callers decide themselves."""
    family, options = config.resolve()
    if family.role != DETECTOR or options.weights is not None or options.resume:
        return None
    try:
        images = int(load_dataset(options.data).manifest["counts"]["train"]["images"])
    except (DatasetError, KeyError, TypeError, ValueError):
        return None  # train() reports a dataset it cannot use
    if images >= SMALL_TRAIN_IMAGES:
        return None
    return (f"{images} training images and no --weights: a detector trained from scratch on "
            f"fewer than {SMALL_TRAIN_IMAGES} images learns little (yolov8n on two real "
            f"patients: mAP50 0.000 for 7 epochs); start from the shipped phantom checkpoint "
            f"with --weights phantom (--model yolov8)")


def train(config: TrainConfig, on_epoch: EpochProgress | None = None,
          on_batch: BatchProgress | None = None) -> TrainResult:
    """Train one model into a run folder (module docstring); ``on_epoch`` after each
    epoch, ``on_batch`` after each step of the families that report steps. A detector's
    operating threshold is then chosen on its validation split
    (:mod:`detect.train.operating`).

    Raises:
        DetectError: dataset or option problems (one line each).
        KeyboardInterrupt: passed on; after its first epoch the run folder stays resumable.
    """
    family, options = config.resolve()
    target = check_target(config.operating_point or DEFAULT_TARGET)
    require_training_packages("detect train")
    result = family.train(options, SERVICES, on_epoch, on_batch)
    if family.role != DETECTOR:
        return result
    return set_operating_point(result, family, target, options.device)


def train_config(config: RunOptions, on_epoch: EpochProgress | None = None,
                 on_batch: BatchProgress | None = None) -> TrainResult:
    """Train from a family's own config (:class:`~detect.models.yolo.config.YoloConfig`,
    :class:`~detect.models.faster_rcnn.config.FasterRCNNConfig`,
    :class:`~detect.models.histology.config.HistologyConfig`), which holds options the
    command line does not offer (CPU processes, steps per epoch, learning rate): tests and
    benchmarks.

    Raises:
        DetectError: dataset or option problems (one line each).
    """
    require_training_packages("detect train")
    family = family_for(config)
    result = family.train(config, SERVICES, on_epoch, on_batch)
    if family.role != DETECTOR:
        return result
    return set_operating_point(result, family, DEFAULT_TARGET, config.device)
