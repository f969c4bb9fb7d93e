"""What ``detect eval`` measured: :class:`EvalResult`, whose ``to_dict()`` is metrics.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EVAL_FORMAT = "detect-eval"


@dataclass(frozen=True)
class EvalResult:
    """Everything ``detect eval`` measured; ``to_dict()`` is metrics.json.

    Sections (plain JSON-able dicts): ``counts`` (slices, boxes, predictions used and
    excluded, patients per letter), ``detection`` (COCO AP), ``froc``, ``per_patient``,
    ``histology`` (``detector`` and ``head``), ``ci`` (bootstrap), ``leak``, ``gallery``
    (worst false positives, missed tumours), ``lesions`` (lesion-level FROC and per-lesion
    sensitivity, :mod:`detect.eval.lesions`) and ``settings``. Numbers that are undefined
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
    #: What may make the figures misleading (e.g. records cut at a high threshold).
    warnings: tuple[str, ...] = ()
    lesions: dict[str, Any] = field(default_factory=dict)

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
            "lesions": self.lesions,
            "per_patient": self.per_patient,
            "histology": self.histology,
            "ci": self.ci,
            "gallery": self.gallery,
            "warnings": list(self.warnings),
        }
