"""COCO average precision: pycocotools' COCOeval (called, built in memory), and a fast
re-implementation of its bbox AP for the bootstrap.

``cocoeval_precision`` is the reference: mAP50, mAP50-95, AP at IoU 0.1 and the PR
curves all come from it. ``ApTable`` + ``ap101`` re-implement COCOeval's matching and
101-point interpolated AP (area "all", 100 detections per image and class) so that the
bootstrap can recompute AP on thousands of resampled patient sets without rebuilding
COCO objects; on the full set it equals COCOeval (checked on every run and in the tests).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detect.boxes import box_iou, xyxy_to_coco
from detect.eval.truth import Detection, SplitTruth

#: COCO's recall thresholds 0, 0.01, ..., 1 (101 points).
REC_THRS = np.linspace(0.0, 1.0, 101)
#: COCO's IoU thresholds 0.5, 0.55, ..., 0.95.
IOU_50_95 = np.linspace(0.5, 0.95, 10)
MAX_DETS = 100


def coco_gt(truth: SplitTruth, *, agnostic: bool = False) -> dict[str, Any]:
    """The split's ground truth as a COCO dict (one category ``tumor`` when agnostic)."""
    names = ["tumor"] if agnostic else list(truth.classes)
    annotations: list[dict[str, Any]] = []
    for image in truth.images.values():
        for box in image.boxes:
            xywh = xyxy_to_coco(box.xyxy)
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image.image_id,
                "category_id": 1 if agnostic else box.class_index + 1,
                "bbox": xywh,
                "area": xywh[2] * xywh[3],
                "iscrowd": 0,
            })
    return {
        "images": [{"id": i.image_id, "width": i.width, "height": i.height}
                   for i in truth.images.values()],
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": n, "supercategory": "tumor"}
                       for k, n in enumerate(names)],
    }


def coco_results(
    by_image: Mapping[int, Sequence[Detection]], *, agnostic: bool = False
) -> list[dict[str, Any]]:
    """Detections as COCO results (image order, then input order); unmapped ones are left
    out unless agnostic."""
    results = []
    for image_id in sorted(by_image):
        for det in by_image[image_id]:
            if det.class_index is None and not agnostic:
                continue
            results.append({
                "image_id": image_id,
                "category_id": 1 if agnostic else det.class_index + 1,  # type: ignore[operator]
                "bbox": xyxy_to_coco(det.xyxy),
                "score": det.score,
            })
    return results


def cocoeval_precision(
    gt: dict[str, Any], results: list[dict[str, Any]],
    iou_thresholds: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """COCOeval's precision ``[T, R, K]`` (area all, 100 dets): T IoU thresholds, R=101
    recall thresholds, K categories in id order; -1 where a category has no ground truth.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    n_cats = len(gt["categories"])
    has_gt = np.zeros(n_cats, dtype=bool)
    for ann in gt["annotations"]:
        has_gt[ann["category_id"] - 1] = True
    if not results:  # COCO.loadRes cannot take an empty list
        empty = np.where(has_gt, 0.0, -1.0)
        return np.broadcast_to(empty, (len(iou_thresholds), len(REC_THRS), n_cats)).copy()
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        dets = coco.loadRes(results)
        evaluator = COCOeval(coco, dets, iouType="bbox")
        evaluator.params.iouThrs = np.asarray(iou_thresholds, dtype=float)
        evaluator.evaluate()
        evaluator.accumulate()
    precision = np.asarray(evaluator.eval["precision"])[:, :, :, 0, -1]
    return precision


def mean_ap(precision: np.ndarray) -> float:
    """COCO's summary: the mean over IoU thresholds, recall points and categories with
    ground truth (0.0 when none has any)."""
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else 0.0


def per_class_ap(precision: np.ndarray, t: int = 0) -> list[float | None]:
    """AP of each category at IoU threshold index ``t`` (None: no ground truth)."""
    out: list[float | None] = []
    for k in range(precision.shape[2]):
        column = precision[t, :, k]
        out.append(None if (column <= -1).all() else float(column.mean()))
    return out



def coco_match(gt_boxes: np.ndarray, det_boxes: np.ndarray, threshold: float) -> np.ndarray:
    """COCOeval's greedy matching on one image and class: ``det_boxes`` sorted by score
    (descending); each detection takes the unmatched gt box of highest IoU >= threshold
    (ties: the later gt box, as COCOeval). Returns a bool TP flag per detection."""
    ious = box_iou(det_boxes, gt_boxes)
    taken = np.zeros(len(gt_boxes), dtype=bool)
    tp = np.zeros(len(det_boxes), dtype=bool)
    limit = min(threshold, 1 - 1e-10)
    for d in range(len(det_boxes)):
        best, match = limit, -1
        for g in range(len(gt_boxes)):
            if taken[g] or ious[d, g] < best:
                continue
            best, match = ious[d, g], g
        if match >= 0:
            taken[match], tp[d] = True, True
    return tp


@dataclass(frozen=True)
class ApTable:
    """Matches of one class at one IoU threshold, for AP on any multiset of patients:
    detections in COCOeval's global order (score descending, stable), their TP flag and
    patient index; and the number of gt boxes of each patient."""

    scores: np.ndarray
    tp: np.ndarray
    patient: np.ndarray
    npos: np.ndarray

    def ap(self, weights: np.ndarray | None = None) -> float:
        """101-point interpolated AP with each patient counted ``weights[p]`` times
        (NaN when no gt box is counted)."""
        w = np.ones(len(self.npos)) if weights is None else np.asarray(weights, dtype=float)
        npos = float(np.dot(w, self.npos))
        if npos <= 0:
            return float("nan")
        det_w = w[self.patient]
        keep = det_w > 0
        tp_sum = np.cumsum(det_w * self.tp)[keep]
        fp_sum = np.cumsum(det_w * ~self.tp)[keep]
        return ap101(tp_sum, fp_sum, npos)


def ap101(tp_sum: np.ndarray, fp_sum: np.ndarray, npos: float) -> float:
    """COCOeval.accumulate's AP from cumulative TP / FP counts (in score order)."""
    if len(tp_sum) == 0:
        return 0.0
    recall = tp_sum / npos
    precision = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    index = np.searchsorted(recall, REC_THRS, side="left")
    q = np.zeros(len(REC_THRS))
    valid = index < len(precision)
    q[valid] = precision[index[valid]]
    return float(q.mean())


def ap_tables(
    truth: SplitTruth, by_image: Mapping[int, Sequence[Detection]], threshold: float,
    patients: Sequence[str],
) -> list[ApTable]:
    """One ApTable per class, matching as COCOeval does at IoU ``threshold``."""
    index_of = {p: i for i, p in enumerate(patients)}
    tables = []
    for k in range(len(truth.classes)):
        npos = np.zeros(len(patients))
        scores: list[np.ndarray] = []
        flags: list[np.ndarray] = []
        owner: list[np.ndarray] = []
        for image_id, image in truth.images.items():
            p = index_of[image.patient_id]
            gts = np.array([b.xyxy for b in image.boxes if b.class_index == k]).reshape(-1, 4)
            npos[p] += len(gts)
            dets = [d for d in by_image.get(image_id, ()) if d.class_index == k]
            order = np.argsort([-d.score for d in dets], kind="mergesort")[:MAX_DETS]
            dets = [dets[i] for i in order]
            boxes = np.array([d.xyxy for d in dets]).reshape(-1, 4)
            scores.append(np.array([d.score for d in dets], dtype=float))
            flags.append(coco_match(gts, boxes, threshold))
            owner.append(np.full(len(dets), p, dtype=int))
        all_scores = np.concatenate(scores) if scores else np.zeros(0)
        order = np.argsort(-all_scores, kind="mergesort")
        tables.append(ApTable(
            all_scores[order],
            (np.concatenate(flags) if flags else np.zeros(0, bool))[order],
            (np.concatenate(owner) if owner else np.zeros(0, int))[order],
            npos,
        ))
    return tables


def mean_of(values: Iterable[float]) -> float:
    """Mean of the finite values (NaN when there are none): mAP over classes with gt."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")
