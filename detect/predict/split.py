"""A trained model on a converted split's PNGs (``detect eval --weights``): records tied to
the COCO images (image_id, SOP, series and patient)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from detect.dataset import DatasetInfo, read_rgb
from detect.errors import DatasetError
from detect.models.detector import load_detector
from detect.predict.histology import check_head_fits, load_head, with_head
from detect.predict.records import to_predictions
from detect.predictions import Prediction
from detect.runs import check_fits_dataset, resolve_weights


def _read_png(dataset: DatasetInfo, file_name: str) -> np.ndarray:
    path = (dataset.root / file_name).resolve()
    if dataset.root.resolve() not in path.parents:
        raise DatasetError(f"{dataset.root}: image path {file_name!r} points outside the dataset")
    return read_rgb(path)


def predict_split(
    weights: Path,
    dataset: DatasetInfo,
    split: str,
    device: str = "auto",
    *,
    conf: float = 0.001,
    batch: int = 16,
    histology: Path | None = None,
) -> list[Prediction]:
    """Predictions on a converted split's PNGs, tied to the COCO images (image_id, SOP,
    series and patient). ``conf`` is low by default so mAP sees the whole PR curve.
    ``histology``: a histology head run whose probabilities replace every record's
    ``histology`` (it must use the dataset's channel recipe).

    Raises:
        RunFolderError: the model (or head) does not fit the dataset (classes or channel
            recipe), or ``histology`` is not a histology head.
        DatasetError: missing split or unreadable images.
    """
    info, path = resolve_weights(weights)
    check_fits_dataset(info, dataset.classes, dataset.recipe)
    detector = load_detector(info, path, device)
    head = None if histology is None else load_head(histology, device)
    if head is not None:
        check_head_fits(head, dataset.recipe)
    images: list[dict[str, Any]] = list(dataset.load_coco(split).get("images", []))
    out: list[Prediction] = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        pixels = [_read_png(dataset, im["file_name"]) for im in chunk]
        for image, pixel, det in zip(chunk, pixels, detector.predict(pixels, conf)):
            records = to_predictions(
                det, info.classes, info.class_mode,
                sop=str(image.get("sop_instance_uid", "")),
                series=str(image.get("series_instance_uid", "")),
                patient=str(image.get("patient_id", "")),
                image_id=int(image["id"]),
                score_threshold=conf,
            )
            out.extend(records if head is None else with_head(records, pixel, head))
    return out
