"""Pre- and post-processing shared by every YOLO runtime (PyTorch, ONNX, TorchScript), in
numpy alone: an exported model runs with neither torch nor ultralytics installed, and
every runtime sees the same pixels and gives the same boxes.

- :func:`letterbox`: ultralytics' predict letterbox (the aspect kept, scaled by
  ``min(imgsz / H, imgsz / W)``, sides rounded, centred, padded with 114), resized
  bilinearly with pixel centres aligned as OpenCV's ``INTER_LINEAR`` (no antialiasing);
  values agree with OpenCV's fixed-point result within one grey level.
- :func:`decode_output`: with NMS (YOLOv8, YOLO11: output (B, 4 + nc, anchors), boxes
  cx, cy, w, h): ultralytics' ``non_max_suppression`` rules (candidates whose best class
  score exceeds ``conf``, one label per box, at most 30,000 boxes into NMS, class-aware
  greedy NMS at ``iou``, at most 300 kept), each box keeping its class-score vector;
  NMS-free (YOLO26's one-to-one head: (B, k, 6) rows x1, y1, x2, y2, score, class): only
  the score threshold. Then ultralytics' ``scale_boxes`` out of the letterbox.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detect.errors import RunFolderError
from detect.models.base import Detections

#: Most boxes per image after decoding (ultralytics' max_det).
MAX_DETECTIONS = 300
#: Most candidates NMS sorts (ultralytics' max_nms).
MAX_NMS = 30_000
#: Per-class offset that keeps classes apart in one NMS pass (ultralytics' max_wh).
CLASS_OFFSET_PX = 7680.0
PAD_VALUE = 114


def _resize_bilinear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """H x W x C uint8 → ``height`` x ``width`` x C, bilinear with half-pixel centres
    (OpenCV ``INTER_LINEAR``), rounded."""
    src_h, src_w = image.shape[:2]

    def axis(dst: int, src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = (np.arange(dst, dtype=np.float64) + 0.5) * (src / dst) - 0.5
        low = np.floor(pos)
        frac = (pos - low).astype(np.float32)
        low = low.astype(np.int64)
        return np.clip(low, 0, src - 1), np.clip(low + 1, 0, src - 1), np.where(
            pos < 0, 0.0, frac).astype(np.float32)

    y0, y1, fy = axis(height, src_h)
    x0, x1, fx = axis(width, src_w)
    data = image.astype(np.float32)
    top = data[y0][:, x0] * (1 - fx)[None, :, None] + data[y0][:, x1] * fx[None, :, None]
    bottom = data[y1][:, x0] * (1 - fx)[None, :, None] + data[y1][:, x1] * fx[None, :, None]
    out = top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def letterbox(image: np.ndarray, imgsz: int) -> np.ndarray:
    """One H x W x 3 uint8 image → imgsz x imgsz x 3 uint8 (module docstring)."""
    height, width = image.shape[:2]
    ratio = min(imgsz / height, imgsz / width)
    new_w, new_h = max(round(width * ratio), 1), max(round(height * ratio), 1)
    resized = image if (new_h, new_w) == (height, width) else _resize_bilinear(
        np.ascontiguousarray(image), new_w, new_h)
    dw, dh = (imgsz - new_w) / 2, (imgsz - new_h) / 2
    top, left = round(dh - 0.1), round(dw - 0.1)
    out = np.full((imgsz, imgsz, 3), PAD_VALUE, dtype=np.uint8)
    out[top : top + new_h, left : left + new_w] = resized
    return out


def model_input(images: Sequence[np.ndarray], imgsz: int) -> np.ndarray:
    """H x W x 3 uint8 images (channels in recipe order) → (B, 3, imgsz, imgsz) float32 in
    [0, 1]: the letterboxed batch every YOLO runtime feeds its network."""
    batch = np.stack([letterbox(image, imgsz) for image in images])
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)


def scale_boxes(input_hw: tuple[int, int], boxes: np.ndarray, image_hw: tuple[int, int]
                ) -> np.ndarray:
    """xyxy px of the letterboxed input → px of the image (ultralytics' ``scale_boxes``),
    clipped to the image."""
    gain = min(input_hw[0] / image_hw[0], input_hw[1] / image_hw[1])
    new_h, new_w = (max(round(side * gain), 1) for side in image_hw)
    pad_x = round((input_hw[1] - new_w) / 2 - 0.1)
    pad_y = round((input_hw[0] - new_h) / 2 - 0.1)
    out = boxes.astype(np.float64).copy()
    out[:, [0, 2]] = (out[:, [0, 2]] - pad_x) / (new_w / image_hw[1])
    out[:, [1, 3]] = (out[:, [1, 3]] - pad_y) / (new_h / image_hw[0])
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, image_hw[1])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, image_hw[0])
    return out


def _iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int) -> np.ndarray:
    """Greedy NMS: indices of the kept boxes, best first (ties by index), at most
    ``limit``; a box is dropped when its IoU with a kept one exceeds ``iou``."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < limit:
        best, order = int(order[0]), order[1:]
        keep.append(best)
        if order.size:
            order = order[_iou_one_to_many(boxes[best], boxes[order]) <= iou]
    return np.asarray(keep, dtype=np.int64)


def _with_nms(raw: np.ndarray, nc: int, conf: float, iou: float) -> Detections:
    """One image's (4 + nc, anchors) output → detections after class-aware NMS."""
    rows = raw.T.astype(np.float32)
    class_scores = rows[:, 4 : 4 + nc]
    best = class_scores.max(axis=1) if nc else np.zeros(len(rows), np.float32)
    candidates = np.flatnonzero(best > conf)
    if candidates.size > MAX_NMS:
        candidates = candidates[np.argsort(-best[candidates], kind="stable")[:MAX_NMS]]
    xywh = rows[candidates, :4]
    xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
    labels = class_scores[candidates].argmax(axis=1)
    scores = best[candidates]
    offset = xyxy + (labels * CLASS_OFFSET_PX)[:, None]
    kept = nms(offset.astype(np.float64), scores, iou, MAX_DETECTIONS)
    return Detections(xyxy=xyxy[kept].reshape(-1, 4), scores=scores[kept],
                      classes=labels[kept].astype(np.int64),
                      class_scores=class_scores[candidates][kept].reshape(-1, nc))


def _end2end(raw: np.ndarray, conf: float) -> Detections:
    """One image's (k, 6) NMS-free output → the rows above ``conf`` (at most 300)."""
    rows = raw.astype(np.float32)
    rows = rows[rows[:, 4] > conf][:MAX_DETECTIONS]
    return Detections(xyxy=rows[:, :4].reshape(-1, 4), scores=rows[:, 4],
                      classes=rows[:, 5].astype(np.int64), class_scores=None)


def decode_output(raw: np.ndarray, images: Sequence[np.ndarray], input_hw: tuple[int, int], *,
                  nc: int, conf: float, iou: float, end2end: bool = False) -> list[Detections]:
    """The YOLO head output → :class:`Detections` per image in the images' own px (module
    docstring).

    Raises:
        RunFolderError: the output is not the shape of this kind of head.
    """
    raw = np.asarray(raw)
    if end2end and (raw.ndim != 3 or raw.shape[2] != 6):
        raise RunFolderError(f"unexpected YOLO output {raw.shape} for an NMS-free head "
                             f"(expected (batch, k, 6))")
    if not end2end and (raw.ndim != 3 or raw.shape[1] != 4 + nc):
        raise RunFolderError(
            f"unexpected YOLO output {raw.shape} for {nc} classes (expected "
            f"(batch, {4 + nc}, anchors)); only YOLO detection heads are supported"
        )
    out = []
    for image, one in zip(images, raw):
        found = _end2end(one, conf) if end2end else _with_nms(one, nc, conf, iou)
        xyxy = scale_boxes(input_hw, found.xyxy, image.shape[:2]).astype(np.float32)
        out.append(Detections(xyxy=xyxy.reshape(-1, 4), scores=found.scores.astype(np.float32),
                              classes=found.classes,
                              class_scores=None if found.class_scores is None
                              else found.class_scores.astype(np.float32)))
    return out


class YoloDecoding:
    """``predict`` for every YOLO runtime (PyTorch, ONNX, TorchScript): the subclass gives
    :meth:`head`, the letterboxed batch through its network; decoding is shared."""

    _classes: tuple[str, ...]
    imgsz: int
    iou: float
    end2end: bool = False

    def head(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, tuple[int, int]]:
        """The raw network output as a numpy array, and the input's (H, W) px."""
        raise NotImplementedError

    @property
    def classes(self) -> tuple[str, ...]:
        return self._classes

    def predict(self, images: Sequence[np.ndarray], conf: float) -> list[Detections]:
        """Detections per image (channels in recipe order), score >= conf."""
        if not images:
            return []
        raw, input_hw = self.head(images)
        return decode_output(raw, images, input_hw, nc=len(self._classes), conf=conf,
                             iou=self.iou, end2end=self.end2end)
