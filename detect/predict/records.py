"""A detector's output on one image → contract-4 prediction records.

Histology probabilities (contract 4 ``histology``): a 4-class histology detector gives
each box the per-class scores of its head (YOLO: independent sigmoids) normalised to sum
to 1; a ``tumor`` detector gives none.
"""

from __future__ import annotations

from collections.abc import Sequence

from detect.models.base import Detections
from detect.predictions import Prediction, normalised


def to_predictions(
    det: Detections,
    classes: Sequence[str],
    class_mode: str,
    *,
    sop: str,
    series: str,
    patient: str,
    image_id: int | None = None,
    score_threshold: float | None = None,
    dicom_patient: str | None = None,
    model_threshold: float | None = None,
) -> list[Prediction]:
    """Contract-4 records of one image's detections (module docstring: histology);
    ``score_threshold``: the operating threshold they were cut at, recorded in each;
    ``patient``: the short patient ID, ``dicom_patient``: the header's PatientID;
    ``model_threshold``: the model's own threshold, when the run cut at another."""
    out = []
    for i in range(len(det)):
        cls = int(det.classes[i])
        histology = None
        if class_mode == "histology" and det.class_scores is not None:
            histology = normalised([float(v) for v in det.class_scores[i]], classes)
        x1, y1, x2, y2 = (float(v) for v in det.xyxy[i])
        out.append(
            Prediction(
                sop_instance_uid=sop,
                series_instance_uid=series,
                patient_id=patient,
                xyxy=(x1, y1, x2, y2),
                score=min(max(float(det.scores[i]), 0.0), 1.0),
                label=classes[cls],
                category_id=cls + 1,
                histology=histology,
                image_id=image_id,
                score_threshold=score_threshold,
                dicom_patient_id=dicom_patient,
                model_threshold=model_threshold,
            )
        )
    return out
