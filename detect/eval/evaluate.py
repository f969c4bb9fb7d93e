"""``detect eval``: score prediction records against a converted dataset's ground truth.

Model-agnostic: this module (and the ``eval_*`` modules and ``report`` behind it) never
imports a model; it sees only contract-4 prediction records, so every model family is
scored by the same code. What is computed, and exactly how:

- COCO mAP50, mAP50-95 and AP per class through pycocotools' COCOeval (area "all", 100
  detections per image); AP at IoU 0.1 (the nnDetection / MONAI convention) with
  COCOeval at ``iouThrs=[0.1]``; on a multi-class dataset also class-agnostic AP.
- FROC (``eval_froc``): sensitivity at 1/8 ... 8 false positives per CT series, and their
  mean; lesion-level, class-agnostic hits at IoU >= ``iou_froc`` (0.1).
- Per-patient sensitivity at the operating threshold ``conf`` (0.25): a patient's tumour is
  found when one of its gt boxes is hit (IoU >= ``iou_froc``, score >= conf).
- Histology (``eval_histology``) from the detector's letters and, separately, from a
  histology head's probabilities, slice- and patient-level.
- 95% CIs by bootstrap over patients (``eval_bootstrap``) for the headline numbers.
- Leakage guard: patients the model was trained on must not be in the evaluated split.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detect.dataset import SPLITS, DatasetInfo
from detect.errors import ConfigError, RunFolderError
from detect.eval.truth import Assignment, SplitTruth, assign_predictions, load_truth
from detect.eval.leak import check_leakage, leak_overlap, model_train_patients
from detect.eval.sections import (
    bootstrap_section,
    detection_section,
    froc_section,
    gallery_section,
    histology_section,
    patient_section,
)
from detect.predictions import Prediction

__all__ = [
    "EvalConfig",
    "EvalResult",
    "EvalRun",
    "check_leakage",
    "evaluate_predictions",
    "leak_overlap",
    "run_eval",
    "write_report",
]
logger = logging.getLogger(__name__)

EVAL_FORMAT = "detect-eval"


@dataclass(frozen=True)
class EvalConfig:
    """Options of ``detect eval``.

    Exactly one of ``predictions`` (a contract-4 JSON file) and ``weights`` (a trained
    model, predicted on the split first) is given. ``out`` defaults to
    ``<predictions folder>/eval-<split>`` or ``<run folder>/eval-<split>``. ``iou_froc``
    is the IoU at which a detection hits a lesion for FROC, per-patient sensitivity and
    histology (0.1, the medical-detection convention); ``conf`` the operating score
    threshold for per-patient sensitivity and histology. ``histology``: a histology head
    run (with ``weights`` only) whose probabilities fill the report's ``head`` section.
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
    conf: float = 0.25
    device: str = "auto"
    histology: Path | None = None

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
        _check_options(self.bootstrap, self.iou_froc, self.conf)

    @property
    def out_dir(self) -> Path:
        """Where the report goes (see the class docstring)."""
        if self.out is not None:
            return self.out
        if self.predictions is not None:
            return self.predictions.parent / f"eval-{self.split}"
        return _run_folder(self.weights or Path(".")) / f"eval-{self.split}"


def _check_options(bootstrap: int, iou_froc: float, conf: float) -> None:
    if bootstrap < 0:
        raise ConfigError(f"--bootstrap must be >= 0 replicates, got {bootstrap}")
    if not 0.0 < iou_froc <= 1.0:
        raise ConfigError(f"--iou-froc must be in (0, 1], got {iou_froc}")
    if not 0.0 <= conf <= 1.0:
        raise ConfigError(f"--conf must be in [0, 1], got {conf}")


@dataclass(frozen=True)
class EvalResult:
    """Everything ``detect eval`` measured; ``to_dict()`` is metrics.json.

    Sections (plain JSON-able dicts): ``counts`` (slices, boxes, predictions used and
    excluded, patients per letter), ``detection`` (COCO AP), ``froc``, ``per_patient``,
    ``histology`` (``detector`` and ``head``), ``ci`` (bootstrap), ``leak``, ``gallery``
    (worst false positives, missed tumours) and ``settings``. Numbers that are undefined
    (e.g. AP of a class with no gt box) are None.
    """

    split: str
    classes: tuple[str, ...]
    class_mode: str
    dataset: dict[str, Any]
    settings: dict[str, Any]
    counts: dict[str, Any]
    detection: dict[str, Any]
    froc: dict[str, Any]
    per_patient: dict[str, Any]
    histology: dict[str, Any]
    ci: dict[str, Any]
    leak: dict[str, Any] = field(default_factory=dict)
    gallery: dict[str, Any] = field(default_factory=dict)

    @property
    def map50(self) -> float | None:
        return self.detection["map50"]

    @property
    def map50_95(self) -> float | None:
        return self.detection["map50_95"]

    @property
    def ap10(self) -> float | None:
        return self.detection["ap10"]

    @property
    def froc_mean(self) -> float | None:
        return self.froc["mean"]

    @property
    def patient_sensitivity(self) -> float | None:
        return self.per_patient["sensitivity"]

    @property
    def leaked(self) -> bool:
        return bool(self.leak.get("patients"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": EVAL_FORMAT,
            "version": 1,
            "split": self.split,
            "classes": list(self.classes),
            "class_mode": self.class_mode,
            "dataset": self.dataset,
            "settings": self.settings,
            "leak": self.leak,
            "counts": self.counts,
            "detection": self.detection,
            "froc": self.froc,
            "per_patient": self.per_patient,
            "histology": self.histology,
            "ci": self.ci,
            "gallery": self.gallery,
        }


def evaluate_predictions(
    dataset: DatasetInfo,
    split: str,
    predictions: Sequence[Prediction],
    *,
    train_patients: Collection[str] | None = None,
    allow_leak: bool = False,
    bootstrap: int = 1000,
    seed: int = 0,
    iou_froc: float = 0.1,
    conf: float = 0.25,
) -> EvalResult:
    """Score ``predictions`` against ``split`` of ``dataset`` (module docstring).

    ``train_patients``: the patients the model was trained on; when given, any of them in
    ``split`` is leakage (see :func:`leak_overlap`). None: not checked (marked so).

    Raises:
        ConfigError: an option is out of range.
        DatasetError: the split's ground truth is missing or malformed.
        RunFolderError: leakage, unless ``allow_leak``.
    """
    _check_options(bootstrap, iou_froc, conf)
    truth = load_truth(dataset, split)
    overlap = (
        [] if train_patients is None
        else leak_overlap(train_patients, truth.patients, split, allow_leak)
    )
    assignment = assign_predictions(truth, predictions)
    detection, tables = detection_section(truth, assignment.by_image)
    froc, matches, froc_table = froc_section(truth, assignment.by_image, iou_froc)
    per_patient, found = patient_section(truth, matches, conf)
    histology = histology_section(truth, assignment.by_image, conf, iou_froc)
    ci = bootstrap_section(
        truth, tables, froc_table, found, histology, detection, froc, per_patient,
        n=bootstrap, seed=seed,
    )
    return EvalResult(
        split=split,
        classes=truth.classes,
        class_mode=truth.class_mode,
        dataset={"path": str(dataset.root), "fingerprint": dataset.fingerprint},
        settings={"iou_froc": iou_froc, "conf": conf, "bootstrap": bootstrap, "seed": seed},
        counts=_counts(truth, assignment, len(predictions), froc["scans"]),
        detection=detection,
        froc=froc,
        per_patient=per_patient,
        histology=histology,
        ci=ci,
        leak={"checked": train_patients is not None, "allowed": allow_leak,
              "patients": overlap},
        gallery=gallery_section(truth, assignment.by_image, matches, conf),
    )


def _counts(truth: SplitTruth, assignment: Assignment, n_predictions: int, scans: int
            ) -> dict[str, Any]:
    return {
        "images": len(truth.images),
        "gt_boxes": sum(len(i.boxes) for i in truth.images.values()),
        "patients": len(truth.patients),
        "scans": scans,
        "patients_per_letter": truth.patients_per_letter(),
        "predictions": n_predictions,
        "predictions_in_split": assignment.in_split,
        "predictions_outside_split": assignment.outside_split,
        "predictions_outside_split_examples": list(assignment.outside_examples),
        "predictions_unmapped_label": assignment.unmapped,
    }


def _run_folder(weights: Path) -> Path:
    """The run folder of ``runs/<model>/<name>/weights/best.pt`` (or of the folder itself)."""
    if weights.is_dir():
        return weights
    return weights.parent.parent if weights.parent.name == "weights" else weights.parent


def write_report(result: EvalResult, out: Path, dataset: DatasetInfo) -> dict[str, Path]:
    """Write metrics.json, report.md, report.html and PNG figures into ``out``; returns
    their paths by name (see :func:`detect.eval.report.write_report`)."""
    from detect.eval.report import write_report as _write

    return _write(result, out, dataset)


@dataclass(frozen=True)
class EvalRun:
    """What ``run_eval`` did: the result, the folder and the files written."""

    result: EvalResult
    out: Path
    files: dict[str, Path]


def run_eval(config: EvalConfig) -> EvalRun:
    """``detect eval``: predictions (read, or made with ``--weights``) → report in out.

    Raises:
        DetectError: dataset, predictions, model or leakage problems (one line each).
    """
    import json

    from detect.dataset import load_dataset
    from detect.predictions import read_predictions, write_predictions

    dataset = load_dataset(config.data)
    out = config.out_dir
    train: list[str] | None = None
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
        predictions = _predict(config.weights, dataset, config.split, config.device,
                               config.histology)
        out.mkdir(parents=True, exist_ok=True)
        write_predictions(out / "predictions.json", predictions)
    else:
        predictions = read_predictions(config.predictions or Path("predictions.json"))
    result = evaluate_predictions(
        dataset, config.split, predictions, train_patients=train,
        allow_leak=config.allow_leak, bootstrap=config.bootstrap, seed=config.seed,
        iou_froc=config.iou_froc, conf=config.conf,
    )
    files = write_report(result, out, dataset)
    if config.weights is not None:
        files["predictions"] = out / "predictions.json"
    logger.debug("eval written: %s", json.dumps({k: str(v) for k, v in files.items()}))
    return EvalRun(result, out, files)


def _read_model_json(weights: Path) -> dict[str, Any]:
    import json

    path = _run_folder(weights) / "model.json"
    if not path.is_file():
        raise RunFolderError(
            f"no model.json next to {weights} (looked for {path}); pass the weights of a "
            f"run folder written by detect train"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RunFolderError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != "detect-model":
        raise RunFolderError(f"{path}: expected format 'detect-model'")
    return data


def _predict(weights: Path, dataset: DatasetInfo, split: str, device: str,
             histology: Path | None = None) -> list[Prediction]:
    from detect.predict.run import predict_split  # imports torch: only on this path

    return list(predict_split(weights, dataset, split, device, histology=histology))
