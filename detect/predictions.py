"""Contract 4: prediction records, and their on-disk form (COCO results JSON + extras).

One record per detection. Written by ``detect predict`` and ``detect eval``, read by the
evaluator and the writers. A record is tied to its slice by ``sop_instance_uid``, so
predictions made straight from DICOM (which know no COCO image id) score the same as
predictions made on a converted split.

On disk, a list of COCO results objects with extra keys::

    {"image_id": 12 | null, "category_id": 1, "bbox": [x, y, w, h], "score": 0.91,
     "xyxy": [x1, y1, x2, y2], "label": "A",
     "sop_instance_uid": "...", "series_instance_uid": "...", "patient_id": "A0002",
     "histology": {"A": 0.7, "B": 0.1, "E": 0.05, "G": 0.15} | null,
     "score_threshold": 0.25, "dicom_patient_id": "Lung_Dx-A0002", "model_threshold": 0.4}

``category_id`` is 1-based (COCO); ``label`` is the class name of the model's classes.
``patient_id`` is the short ID the dataset and the annotation archive use (``A0002``);
``dicom_patient_id`` (present when the records were made from DICOM) is the header's
PatientID (0010,0020), as the SR and a PACS show it.
``score_threshold`` (present when known) is the operating threshold of the run that wrote
the record: that run kept no detection below it, so a file cut at 0.25 cannot give the
precision-recall curve below 0.25 (``detect predict --conf 0`` keeps every box).
``model_threshold`` (present when the run's ``--conf`` differed from it) is the model's own
operating threshold (model.json ``thresholds.conf``): what a figure "at the operating
point" is taken at when the file was written with every box.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detect.boxes import XYXY, coco_to_xyxy, xyxy_to_coco
from detect.errors import PredictionsError
from detect.io.atomic import write_json
from detect.io.jsonfile import read_json

MAX_PREDICTIONS_BYTES = 2_000_000_000  # ~8 million detections at 250 bytes each
#: The operating threshold assumed when neither a model nor the records say theirs: the
#: detector families' default (model.json ``thresholds.conf``).
DEFAULT_CONF = 0.25
#: The score down to which the evaluator wants every box (``eval --weights`` predicts at
#: it): records cut at a higher threshold miss the low end of the PR and FROC curves.
SCORING_CONF = 0.001


@dataclass(frozen=True)
class Prediction:
    """One detection on one slice. Box in internal xyxy px; score in [0, 1]."""

    sop_instance_uid: str
    series_instance_uid: str
    patient_id: str
    xyxy: XYXY
    score: float
    label: str
    category_id: int
    histology: Mapping[str, float] | None = None
    image_id: int | None = None
    score_threshold: float | None = None
    dicom_patient_id: str | None = None
    model_threshold: float | None = None

    def __post_init__(self) -> None:
        if not (0.0 <= self.score <= 1.0) or math.isnan(self.score):
            raise ValueError(f"score must be in [0, 1], got {self.score}")
        if self.score_threshold is not None and not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if self.model_threshold is not None and not 0.0 <= self.model_threshold <= 1.0:
            raise ValueError(f"model_threshold must be in [0, 1], got {self.model_threshold}")
        if self.category_id < 1:
            raise ValueError(f"category_id is 1-based (COCO), got {self.category_id}")
        x1, y1, x2, y2 = self.xyxy
        if not all(math.isfinite(v) for v in self.xyxy):
            raise ValueError(f"box corners must be finite numbers, got {list(self.xyxy)}")
        if x2 < x1 or y2 < y1:
            raise ValueError(f"box must be x1 <= x2 and y1 <= y2 (xyxy px), got "
                             f"{list(self.xyxy)}")
        if self.histology is not None:
            _check_histology(self.histology)

    def to_json(self) -> dict[str, Any]:
        record = {
            "image_id": self.image_id,
            "category_id": self.category_id,
            "bbox": [round(v, 3) for v in xyxy_to_coco(self.xyxy)],
            "score": round(float(self.score), 6),
            "xyxy": [round(v, 3) for v in self.xyxy],
            "label": self.label,
            "sop_instance_uid": self.sop_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "patient_id": self.patient_id,
            "histology": None
            if self.histology is None
            else {k: round(float(v), 6) for k, v in self.histology.items()},
        }
        if self.score_threshold is not None:
            record["score_threshold"] = self.score_threshold
        if self.dicom_patient_id is not None:
            record["dicom_patient_id"] = self.dicom_patient_id
        if self.model_threshold is not None:
            record["model_threshold"] = self.model_threshold
        return record

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> Prediction:
        """Read one record; ``xyxy`` wins over ``bbox`` when both are present.

        Raises:
            ValueError: the record is not a JSON object, a required key is missing or has
                the wrong type, or a value is out of its range.
        """
        if not isinstance(record, Mapping):
            raise ValueError(f"expected a JSON object (a COCO result), got "
                             f"{type(record).__name__} {_short(record)}")
        try:
            if record.get("xyxy") is not None:
                x1, y1, x2, y2 = (float(v) for v in record["xyxy"])
                xyxy: XYXY = (x1, y1, x2, y2)
            else:
                xyxy = coco_to_xyxy(record["bbox"])
            histology = record.get("histology")
            image_id = record.get("image_id")
            threshold = record.get("score_threshold")
            model_threshold = record.get("model_threshold")
            dicom_patient = record.get("dicom_patient_id")
            if dicom_patient is not None and not isinstance(dicom_patient, str):
                raise ValueError(f"dicom_patient_id must be a string, got "
                                 f"{_short(dicom_patient)}")
            return cls(
                sop_instance_uid=str(record.get("sop_instance_uid") or ""),
                series_instance_uid=str(record.get("series_instance_uid") or ""),
                patient_id=str(record.get("patient_id") or ""),
                xyxy=xyxy,
                score=float(record["score"]),
                label=str(record.get("label") or ""),
                category_id=_integer(record["category_id"], "category_id"),
                histology=_histology(histology),
                image_id=None if image_id is None else _integer(image_id, "image_id"),
                score_threshold=None if threshold is None else float(threshold),
                dicom_patient_id=dicom_patient,
                model_threshold=None if model_threshold is None else float(model_threshold),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a prediction record ({exc}): {_short(record)}") from None


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name} must be an integer, got {_short(value)}")
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"{name} must be an integer, got {_short(value)}")
    return int(number)


def _histology(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"histology must be an object of letter: probability, got "
                         f"{type(value).__name__} {_short(value)}")
    return {str(k): float(v) for k, v in value.items()}


def _check_histology(histology: Mapping[str, float]) -> None:
    for letter, value in histology.items():
        if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
            raise ValueError(f"histology probabilities must be numbers in [0, 1], got "
                             f"{letter!r}: {value!r}")


def write_predictions(path: Path, predictions: Iterable[Prediction]) -> int:
    """Write records as a JSON list (atomically); returns how many were written."""
    records = [p.to_json() for p in predictions]
    write_json(path, records)
    return len(records)


def read_predictions(path: Path) -> list[Prediction]:
    """Read a predictions file.

    Raises:
        PredictionsError: the file is missing, not JSON, or not a list of prediction
            records (each checked: an object, a finite box with x1 <= x2 and y1 <= y2, a
            score and histology probabilities in [0, 1]).
    """
    if not Path(path).is_file():
        raise PredictionsError(f"predictions file not found: {path}")
    data = read_json(Path(path), what="predictions file", max_bytes=MAX_PREDICTIONS_BYTES,
                     hint="pass a predictions.json written by detect "
                     "predict or detect eval (a JSON list of COCO result records)",
                     error=PredictionsError)
    if not isinstance(data, list):
        raise PredictionsError(
            f"{path}: expected a JSON list of prediction records (COCO results), "
            f"got {type(data).__name__}"
        )
    out = []
    for index, record in enumerate(data):
        try:
            out.append(Prediction.from_json(record))
        except ValueError as exc:
            raise PredictionsError(f"{path}: record {index}: {exc}") from None
    return out


def recorded_threshold(predictions: Sequence[Prediction]) -> float | None:
    """The operating threshold the records say they were cut at (the highest, when they
    disagree), or None when none says."""
    found = {p.score_threshold for p in predictions if p.score_threshold is not None}
    return max(found) if found else None


def operating_threshold_of(predictions: Sequence[Prediction]) -> float:
    """The operating point a file of records is judged at: the model's own threshold they
    carry (``model_threshold``; the highest when they disagree), else the one they were cut
    at when it is one (above :data:`SCORING_CONF`), else :data:`DEFAULT_CONF`."""
    found = {p.model_threshold for p in predictions if p.model_threshold is not None}
    if found:
        return max(found)
    cut = recorded_threshold(predictions)
    return cut if cut is not None and cut > SCORING_CONF else DEFAULT_CONF


def histology_argmax(probabilities: Mapping[str, float] | None) -> str | None:
    """The most likely letter, or None when there are no probabilities."""
    if not probabilities:
        return None
    return max(sorted(probabilities), key=lambda k: probabilities[k])


def normalised(probabilities: Sequence[float], letters: Sequence[str]) -> dict[str, float]:
    """Probabilities → a dict that sums to 1 (uniform if all are zero)."""
    total = float(sum(probabilities))
    if total <= 0:
        return {letter: 1.0 / len(letters) for letter in letters}
    return {letter: float(p) / total for letter, p in zip(letters, probabilities)}
