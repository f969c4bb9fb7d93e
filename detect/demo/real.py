"""The demo's last stage: the shipped real model on the repository's real CT sample.

``detect predict`` (the library call) on every slice of the sample (Lung-PET-CT-Dx
patient A0002, series B40f: 30 slices that no shipped model was trained on), scored
against the sample's own VOC boxes over every slice (:mod:`detect.eval.series`), and a
figure of the annotated slices (plus the unannotated ones the model flags) with the
ground truth and the model's detections side by side, each slice captioned with the
lesions it belongs to. Predict applies the model's post-processing (its lung field:
boxes outside it are dropped and counted; its lesion linking). Writes into ``out``:
``predictions.json``, ``slices.csv``, ``summary.csv`` (detect predict's files; every
detection down to score 0.001, so that AP and FROC see the whole curve), ``metrics.json``,
``side_by_side.png``, and ``at-threshold/`` (detect predict at the model's operating
threshold, as a user runs it: its ``lesions.json`` and ``lesions.csv`` are the lesions the
report lists beside the figure); returns report blocks for the demo's report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from detect.boxes import box_iou
from detect.errors import DicomError
from detect.eval.figures import side_by_side
from detect.eval.operating import HIT_IOU
from detect.eval.report import Block, fmt, series_blocks
from detect.eval.series import (
    AnnotationBoxes,
    PredictedSlice,
    SeriesScore,
    read_predicted_series,
)
from detect.io.dicom import read_header, read_hu
from detect.io.geometry import series_geometry
from detect.lesions import Lesion, LinkRule, SliceBox, link_series
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
    #: The lesions at the model's threshold (lesions.json's entries, with ``series``
    #: and ``on_tumour``), the true lesions, and the boxes at or above the threshold
    #: the lung field dropped.
    lesions: tuple[dict[str, Any], ...] = ()
    true_lesions: tuple[Lesion, ...] = ()
    outside_lung: int = 0


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
                  predictions: Sequence[Prediction], conf: float,
                  lesions: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    on_slice_lesions: dict[str, list[int]] = {}
    for lesion in lesions:
        for box in lesion["boxes"]:
            on_slice_lesions.setdefault(box["sop_instance_uid"], []).append(lesion["lesion"])
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
        numbers = sorted(set(on_slice_lesions.get(one.sop_instance_uid, ())))
        mark += "".join(f", lesion {n}" for n in numbers)
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
    at_conf = predict(PredictConfig(sources=(sample.dicom_root,), weights=weights,
                                    out=out / "at-threshold", save=("json",), device=device))
    series = read_predicted_series(summary.files["slices"], summary.files["predictions"],
                                   sample.annotation_root)
    slices, boxes, predictions = series.slices, series.annotations, series.predictions
    score = series.score(conf=conf)
    found = found_lesions(json.loads(at_conf.files["lesions_json"].read_text()), boxes)
    truth = true_lesions(slices, boxes, info.link_rule)
    items = _figure_items(_shown(slices, boxes, predictions, conf), boxes, predictions, conf,
                          found)
    figure = side_by_side(items, out / "side_by_side.png")
    metrics = {"model": str(weights), "sample": str(sample.root), **score.to_dict(),
               "at_threshold": {"conf": at_conf.conf, "outside_lung": at_conf.outside_lung,
                                "lesions": found}}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    blocks = series_blocks(
        score, figure, title="Real CT: Lung-PET-CT-Dx patient A0002 (never trained on)",
        about=(f"The shipped real model ({info.root.name}: "
               f"{info.family}{info.manifest.get('size') or ''}, "
               f"classes {', '.join(info.classes)}, trained on two other real patients) on "
               f"every slice of the repository's real sample ({sample.root.name}: "
               f"{len(slices)} slices), scored against the archive's own boxes. Green: "
               f"ground truth; red: detections with score >= {conf:g} (the model's "
               f"operating threshold); orange: on a slice with none, its best detection "
               f"below the threshold, with its score. One patient: read "
               f"these as an illustration, not a benchmark (tools/benchmarks/real_loo.py "
               f"has the leave-one-patient-out figures). Data: TCIA Lung-PET-CT-Dx, "
               f"doi:10.7937/TCIA.2020.NNC20461, CC BY 4.0. Not for clinical use."),
    )
    dropped = None if info.lung_field is None else at_conf.outside_lung
    figure_at = next((i for i, (kind, _) in enumerate(blocks) if kind == "img"), len(blocks))
    blocks[figure_at:figure_at] = lesion_blocks(score, found, truth, dropped, conf)
    return RealStageResult(out=out, score=score, figure=figure, blocks=blocks, model=weights,
                           slices=len(slices), lesions=tuple(found), true_lesions=truth,
                           outside_lung=at_conf.outside_lung)


def found_lesions(document: dict[str, Any], boxes: AnnotationBoxes) -> list[dict[str, Any]]:
    """lesions.json's lesions, each with ``series`` and ``on_tumour``: one of its boxes
    overlaps a true box of its slice (IoU >= 0.1, the scoring's hit rule)."""
    found = []
    for series in document["series"]:
        for lesion in series["lesions"]:
            hit = any(box_iou(np.asarray([b["xyxy"]], float),
                              np.asarray(boxes.boxes[b["sop_instance_uid"]], float)).max()
                      >= HIT_IOU for b in lesion["boxes"] if b["sop_instance_uid"] in boxes.boxes)
            found.append({**lesion, "series": series["series_instance_uid"], "on_tumour": hit})
    return found


def true_lesions(slices: Sequence[PredictedSlice], boxes: AnnotationBoxes,
                 rule: LinkRule) -> tuple[Lesion, ...]:
    """The archive's boxes linked into lesions as predict links the model's (each series
    placed by its slices' headers)."""
    by_series: dict[str, list[PredictedSlice]] = {}
    for one in sorted(slices, key=lambda s: s.slice_index):
        by_series.setdefault(one.series_instance_uid, []).append(one)
    linked: list[Lesion] = []
    for uid in sorted(by_series):
        members = by_series[uid]
        try:
            geometry = series_geometry([read_header(Path(s.path)) for s in members])
        except (DicomError, OSError):
            geometry = None  # predict read them a moment ago; without headers, by index
        index = {s.slice_index: n for n, s in enumerate(members)}
        gt = [SliceBox(s.sop_instance_uid, index[s.slice_index],
                       (float(b[0]), float(b[1]), float(b[2]), float(b[3])), 1.0)
              for s in members for b in boxes.boxes.get(s.sop_instance_uid, ())]
        for lesion in link_series(gt, geometry, LinkRule(iou=rule.iou,
                                                         max_gap=rule.max_gap)).lesions:
            linked.append(replace(lesion, boxes=tuple(
                replace(b, slice_index=members[b.slice_index].slice_index)
                for b in lesion.boxes)))
    return tuple(linked)


def _slices(indices: Sequence[int]) -> str:
    first, last = min(indices) + 1, max(indices) + 1
    return f"{first}" if first == last else f"{first}-{last}"


def _mm(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def lesion_blocks(score: SeriesScore, found: Sequence[dict[str, Any]],
                  truth: Sequence[Lesion], outside_lung: int | None, conf: float
                  ) -> list[Block]:
    """The report's lesion section: what ``detect predict`` reports at the threshold
    (``outside_lung``: boxes the lung field dropped; None: the model has none)."""
    lesions = score.lesions
    rows = [[str(x["lesion"]), f"{x['score']:.2f}", _slices(x["slice_indices"]),
             str(len(x["boxes"])), _mm(x["longest_axial_diameter_mm"]),
             _mm(x["craniocaudal_extent_mm"]), "yes" if x["on_tumour"] else "no"]
            for x in found]
    truth_text = "; ".join(
        f"slices {_slices(x.slice_indices)} ({len(x.boxes)} boxes), longest axial diameter "
        f"{_mm(x.diameter_mm)} mm, craniocaudal extent {_mm(x.extent_mm)} mm" for x in truth)
    sensitivity = dict(zip(lesions["rates_fp_per_scan"], lesions["sensitivity"]))
    field = ("This model has no lung field (its model.json names no post-processing)."
             if outside_lung is None else
             f"The model's lung field dropped {outside_lung} boxes at or above the threshold "
             f"that lay outside it.")
    return [
        ("h3", f"Lesions at the operating threshold ({conf:g})"),
        ("p", f"detect predict links the slice boxes into 3D lesions (lesions.json, "
              f"lesions.csv in at-threshold/). Slices as numbered in the figure; diameter: "
              f"the longer side of the lesion's largest box. {field} "
              f"Ground truth (the archive's boxes linked the same way): "
              f"{truth_text or 'none'}."),
        ("table", (["lesion", "score", "slices", "boxes", "longest axial diameter mm",
                    "craniocaudal extent mm", "on the tumour"], rows or [["none"] + [""] * 6])),
        ("p", f"Lesion-level FROC on this series: sensitivity "
              f"{' / '.join(fmt(v, 2) for v in sensitivity.values())} at "
              f"{' / '.join(f'{r:g}' for r in sensitivity)} false-positive lesions per series; "
              f"at the threshold {lesions['found_at_conf']} of {lesions['lesions']} true "
              f"lesions found, {lesions['false_positives_at_conf']} false-positive lesions."),
    ]
