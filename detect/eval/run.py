"""``detect eval``: read (or have made) prediction records, score them, write the report."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from detect.dataset import SPLITS, DatasetInfo, load_dataset
from detect.errors import ConfigError, DatasetError, RunFolderError
from detect.eval.leak import check_leakage, model_train_patients
from detect.eval.outdir import check_out, eval_output
from detect.eval.report import Report, build_report
from detect.eval.result import EvalResult
from detect.eval.score import check_options, evaluate_predictions
from detect.predictions import (
    DEFAULT_CONF,
    Prediction,
    operating_threshold_of,
    read_predictions,
    write_predictions,
)
from detect.runs import read_model_json

logger = logging.getLogger(__name__)


class SplitPredictor(Protocol):
    """Predicts every image of a dataset split with a trained model (contract-4 records)."""

    def __call__(self, weights: Path, dataset: DatasetInfo, split: str, device: str, *,
                 histology: Path | None = None) -> Sequence[Prediction]: ...


@dataclass(frozen=True)
class EvalConfig:
    """Options of ``detect eval``.

    Exactly one of ``predictions`` (a contract-4 JSON file) and ``weights`` (a trained
    model, predicted on the split first) is given. ``out`` defaults to
    ``<predictions folder>/eval-<split>`` or ``<run folder>/eval-<split>``. ``iou_froc``
    is the IoU at which a detection hits a lesion for FROC, per-patient sensitivity and
    histology (0.1, the medical-detection convention); ``conf`` the operating score
    threshold for per-patient sensitivity and histology: None = the model's (model.json
    ``thresholds.conf``) with ``weights``; with ``predictions`` the model's threshold the
    records carry, else the one they were cut at (when above 0.001), else
    :data:`detect.predictions.DEFAULT_CONF`. ``histology``: a histology head
    run (with ``weights`` only) whose probabilities fill the report's ``head`` section.
    ``overwrite``: replace a report already in the folder (:mod:`detect.eval.outdir`;
    without it, refused).
    """

    data: Path
    split: str = "test"
    out: Path | None = None
    predictions: Path | None = None
    weights: Path | None = None
    allow_leak: bool = False
    bootstrap: int = 1000
    seed: int = 0
    iou_froc: float = 0.1
    conf: float | None = None
    device: str = "auto"
    histology: Path | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if (self.predictions is None) == (self.weights is None):
            raise ConfigError(
                "detect eval takes exactly one of --predictions PRED.json or --weights W, "
                f"got {'both' if self.predictions else 'neither'}"
            )
        if self.histology is not None and self.weights is None:
            raise ConfigError(
                "--histology needs --weights W (the head labels W's detections); with "
                "--predictions, make them with detect predict --histology"
            )
        if self.split not in SPLITS:
            raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        check_options(self.bootstrap, self.iou_froc, self.conf)

    @property
    def out_dir(self) -> Path:
        """Where the report goes (see the class docstring)."""
        if self.out is not None:
            return self.out
        if self.predictions is not None:
            return self.predictions.parent / f"eval-{self.split}"
        return _run_folder(self.weights or Path(".")) / f"eval-{self.split}"


@dataclass(frozen=True)
class EvalRun:
    """What ``run_eval`` did: the result, the folder, the files written and the report
    (which a caller may extend with :meth:`Report.append`)."""

    result: EvalResult
    out: Path
    files: dict[str, Path]
    report: Report


def run_eval(config: EvalConfig, *, predict_split: SplitPredictor | None = None) -> EvalRun:
    """``detect eval``: predictions (read, or made with ``--weights``) → report in out.

    With ``--weights``, ``predict_split`` makes the predictions (the CLI passes
    :func:`detect.predict.predict_split`): this package never imports a model. The leakage
    guard runs before it, so a refused model is never run.

    The report folder is checked before any work and taken (:func:`eval_output`) only
    when there is something to write: a report there is refused without ``overwrite``,
    and a run that fails removes what it wrote.

    Raises:
        DetectError: dataset, predictions, model or leakage problems (one line each).
        OutputFolderError: the report folder holds a report (without ``overwrite``) or
            someone else's files.
    """
    dataset = load_dataset(config.data)
    require_images(dataset, config.split)
    out = config.out_dir
    check_out(out, config.overwrite)
    train: list[str] | None = None
    model_json: dict[str, Any] | None = None
    if config.weights is not None:
        model_json = _read_model_json(config.weights)
        check_leakage(model_json, dataset, config.split, config.allow_leak)
        try:
            train = model_train_patients(model_json, dataset)
        except RunFolderError:
            train = None  # allowed above; the report says leakage was not checked
        if config.histology is not None:
            check_leakage(_read_model_json(config.histology), dataset, config.split,
                          config.allow_leak)
        if predict_split is None:
            raise ConfigError("eval --weights needs a predictor (detect.predict.predict_split)")
        predictions = list(predict_split(config.weights, dataset, config.split, config.device,
                                         histology=config.histology))
    else:
        predictions = read_predictions(config.predictions or Path("predictions.json"))
    conf = _operating_threshold(config, model_json, predictions)
    result = evaluate_predictions(
        dataset, config.split, predictions, train_patients=train,
        allow_leak=config.allow_leak, bootstrap=config.bootstrap, seed=config.seed,
        iou_froc=config.iou_froc, conf=conf,
    )
    with eval_output(out, config.overwrite):
        if config.weights is not None:
            write_predictions(out / "predictions.json", predictions)
        report = build_report(result, out, dataset)
    files = dict(report.files)
    if config.weights is not None:
        files["predictions"] = out / "predictions.json"
    logger.debug("eval written: %s", json.dumps({k: str(v) for k, v in files.items()}))
    return EvalRun(result, out, files, report)


def require_images(dataset: DatasetInfo, split: str) -> None:
    """Scoring needs images: an empty split is refused before any model runs.

    Raises:
        DatasetError: the split has no images (one line: why, from dataset.json, and what
            to do).
    """
    if dataset.load_coco(split).get("images"):
        return
    why = (dataset.manifest.get("empty_splits") or {}).get(split)
    advice = "pass another --split"
    if split != "train":
        advice += (f", or convert with --{split}-patients naming patients for it (or --folds K "
                   f"for leave-out datasets)")
    raise DatasetError(f"{dataset.root}: the {split} split has no images"
                       f"{f' ({why})' if why else ''}; nothing to score: {advice}")


def _operating_threshold(config: EvalConfig, model_json: dict[str, Any] | None,
                         predictions: Sequence[Prediction]) -> float:
    """``--conf``, else the model's, else the records' (:func:`operating_threshold_of`)."""
    if config.conf is not None:
        return config.conf
    if model_json is not None:
        return float(model_json.get("thresholds", {}).get("conf", DEFAULT_CONF))
    return operating_threshold_of(predictions)


def _read_model_json(weights: Path) -> dict[str, Any]:
    """The validated model.json of the run ``weights`` belongs to (what the leakage guard
    reads), before any model is loaded."""
    return dict(read_model_json(_run_folder(weights)).manifest)


def _run_folder(weights: Path) -> Path:
    """The run folder of ``runs/<model>/<name>/weights/best.pt`` (or of the folder itself)."""
    if weights.is_dir():
        return weights
    return weights.parent.parent if weights.parent.name == "weights" else weights.parent
