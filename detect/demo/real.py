"""The demo's last stage: the shipped real model on the repository's real CT sample.

``detect predict`` (the library call) on every slice of the sample (Lung-PET-CT-Dx
patient A0002, series B40f: 30 slices that no shipped model was trained on), scored
against the sample's own VOC boxes over every slice (:mod:`detect.eval.series`), and a
figure of the annotated slices (plus the unannotated ones the model flags) with the
ground truth and the model's detections side by side. Writes into ``out``:
``predictions.json``, ``slices.csv``, ``summary.csv`` (detect predict's files; every
detection down to score 0.001, so that AP and FROC see the whole curve), ``metrics.json``
and ``side_by_side.png``; returns report blocks for the demo's report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detect.errors import DicomError
from detect.eval.figures import side_by_side
from detect.eval.report import Block, series_blocks
from detect.eval.series import (
    AnnotationBoxes,
    PredictedSlice,
    SeriesScore,
    read_predicted_series,
)
from detect.io.dicom import read_hu
from detect.predictions import Prediction
from detect.recipe import WINDOW_PRESETS, Window
from detect.runs import resolve_weights
from detect.shipped import RealSample

#: Predict down to this score so that AP and FROC see the whole curve.
SCORING_CONF = 0.001
#: Unannotated slices with a detection at the operating threshold shown in the figure.
MAX_FLAGGED_SLICES = 4
LUNG = Window("lung", *WINDOW_PRESETS["lung"])


@dataclass(frozen=True)
class RealStageResult:
    """What the real-CT stage wrote and measured."""

    out: Path
    score: SeriesScore
    figure: Path | None
    blocks: list[Block]
    model: Path
    slices: int


def _shown(slices: Sequence[PredictedSlice], boxes: AnnotationBoxes,
           predictions: Sequence[Prediction], conf: float) -> list[PredictedSlice]:
    """The annotated slices in order, then the unannotated slices with the highest
    detections at ``conf`` (at most MAX_FLAGGED_SLICES)."""
    best: dict[str, float] = {}
    for p in predictions:
        if p.score >= conf:
            best[p.sop_instance_uid] = max(best.get(p.sop_instance_uid, 0.0), p.score)
    ordered = sorted(slices, key=lambda s: (s.series_instance_uid, s.slice_index))
    annotated = [s for s in ordered if s.sop_instance_uid in boxes.boxes]
    flagged = sorted((s for s in ordered if s.sop_instance_uid not in boxes.boxes
                      and s.sop_instance_uid in best),
                     key=lambda s: -best[s.sop_instance_uid])[:MAX_FLAGGED_SLICES]
    return annotated + flagged


def _figure_items(shown: Sequence[PredictedSlice], boxes: AnnotationBoxes,
                  predictions: Sequence[Prediction], conf: float) -> list[dict[str, Any]]:
    items = []
    for one in shown:
        try:
            grey = LUNG.apply(read_hu(Path(one.path)))
        except (DicomError, OSError):
            continue  # predict read it a moment ago; if it is gone now, leave it out
        on_slice = sorted((p for p in predictions if p.sop_instance_uid == one.sop_instance_uid),
                          key=lambda p: -p.score)
        detections = [(p.xyxy, p.score) for p in on_slice if p.score >= conf]
        below = [] if detections or not on_slice else [(on_slice[0].xyxy, on_slice[0].score)]
        mark = "" if one.sop_instance_uid in boxes.boxes else " (no box)"
        items.append({"image": grey, "gt": list(boxes.boxes.get(one.sop_instance_uid, ())),
                      "detections": detections, "below": below,
                      "caption": f"{one.patient_id} slice {one.slice_index + 1}{mark}"})
    return items


def run_real_stage(out: Path, *, sample: RealSample, weights: Path,
                   device: str = "auto") -> RealStageResult:
    """Predict on the sample with the real model, score it, draw it (module docstring).

    Raises:
        DetectError: the model or the sample cannot be used (one line each).
    """
    from detect.predict.run import PredictConfig, predict  # torch: only on this path

    info, _ = resolve_weights(weights)
    conf = info.conf
    summary = predict(PredictConfig(sources=(sample.dicom_root,), weights=weights, out=out,
                                    conf=SCORING_CONF, save=("json",), device=device))
    series = read_predicted_series(summary.files["slices"], summary.files["predictions"],
                                   sample.annotation_root)
    slices, boxes, predictions = series.slices, series.annotations, series.predictions
    score = series.score(conf=conf)
    items = _figure_items(_shown(slices, boxes, predictions, conf), boxes, predictions, conf)
    figure = side_by_side(items, out / "side_by_side.png")
    metrics = {"model": str(weights), "sample": str(sample.root), **score.to_dict()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    blocks = series_blocks(
        score, figure, title="Real CT: Lung-PET-CT-Dx patient A0002 (never trained on)",
        about=(f"The shipped real model ({info.root.name}: "
               f"{info.family}{info.manifest.get('size') or ''}, "
               f"classes {', '.join(info.classes)}, trained on two other real patients) on "
               f"every slice of the repository's real sample ({sample.root.name}: "
               f"{len(slices)} slices), scored against the archive's own boxes. Green: "
               f"ground truth; red: detections with score >= {conf:g} (the model's "
               f"threshold); orange: on a slice with none, its best detection below the "
               f"threshold, with its score. One patient: read "
               f"these as an illustration, not a benchmark (tools/benchmarks/real_loo.py "
               f"has the leave-one-patient-out figures). Data: TCIA Lung-PET-CT-Dx, "
               f"doi:10.7937/TCIA.2020.NNC20461, CC BY 4.0. Not for clinical use."),
    )
    return RealStageResult(out=out, score=score, figure=figure, blocks=blocks, model=weights,
                           slices=len(slices))

