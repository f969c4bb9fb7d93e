"""``detect predict``: DICOM folders → detections → JSON, VOC, overlays, CSV, DICOM SR."""

from detect.predict.config import PredictConfig, PredictSummary, parse_save
from detect.predict.records import to_predictions
from detect.predict.run import predict
from detect.predict.split import predict_split

__all__ = [
    "PredictConfig",
    "PredictSummary",
    "parse_save",
    "predict",
    "predict_split",
    "to_predictions",
]
