"""Pre- and post-processing shared by every YOLO runtime (PyTorch, ONNX, TorchScript):
ultralytics' own letterbox in, its NMS (or, for an NMS-free head, its score threshold on the
head's top-k) and ``scale_boxes`` out, so all runtimes see the same pixels and give the same
boxes."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402

from detect.errors import RunFolderError  # noqa: E402
from detect.models.base import Detections  # noqa: E402
from detect.models.yolo.env import prepare_ultralytics  # noqa: E402

#: Most boxes per image (ultralytics' max_det).
MAX_DETECTIONS = 300


def _ultralytics_ready() -> None:
    """Offline switches before ultralytics' first import (an exported model may be the
    first YOLO code a process runs)."""
    if "ultralytics" not in sys.modules:
        prepare_ultralytics()


def letterboxed(images: Sequence[np.ndarray], imgsz: int, stride: int) -> np.ndarray:
    """H × W × 3 uint8 images → (B, imgsz, imgsz, 3) uint8: ultralytics' own ``LetterBox``
    (aspect kept, centred, pad 114), as its predictor does. Shared by every YOLO runtime
    (PyTorch, ONNX, TorchScript) so they all see the same pixels."""
    _ultralytics_ready()
    from ultralytics.data.augment import LetterBox

    letterbox = LetterBox(new_shape=(imgsz, imgsz), auto=False, stride=stride)
    return np.stack([np.asarray(letterbox(image=np.ascontiguousarray(im))) for im in images])


def model_input(batch: np.ndarray, device: str) -> torch.Tensor:
    """(B, H, W, 3) uint8 → (B, 3, H, W) float32 in [0, 1] on ``device``."""
    return torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float().div_(255.0)


def decode_output(
    raw: torch.Tensor,
    images: Sequence[np.ndarray],
    input_hw: tuple[int, int],
    *,
    nc: int,
    conf: float,
    iou: float,
    end2end: bool = False,
) -> list[Detections]:
    """The YOLO head output → :class:`Detections` per image, in the images' own px.

    With NMS (``end2end`` False): the output is (B, 4 + nc, anchors); ultralytics'
    ``non_max_suppression`` with the class scores carried through, so each box keeps its
    class-score vector. NMS-free (YOLO26's one-to-one head): the output is (B, k, 6), k <=
    300 rows of x1, y1, x2, y2, score, class, already the head's top-k; only the score
    threshold applies, and there is no class-score vector. Then ``scale_boxes`` out of the
    letterbox.

    Raises:
        RunFolderError: the output is not the shape of this kind of head.
    """
    _ultralytics_ready()
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import scale_boxes

    if end2end:
        if raw.ndim != 3 or raw.shape[2] != 6:
            raise RunFolderError(f"unexpected YOLO output {tuple(raw.shape)} for an NMS-free "
                                 f"head (expected (batch, k, 6))")
        kept = non_max_suppression(raw, conf, iou, nc=nc, max_det=MAX_DETECTIONS, end2end=True)
    else:
        if raw.ndim != 3 or raw.shape[1] != 4 + nc:
            raise RunFolderError(
                f"unexpected YOLO output {tuple(raw.shape)} for {nc} classes (expected "
                f"(batch, {4 + nc}, anchors)); only YOLO detection heads are supported"
            )
        with_scores = torch.cat((raw, raw[:, 4 : 4 + nc]), dim=1)  # carry class scores
        kept = non_max_suppression(with_scores, conf, iou, nc=nc, max_det=MAX_DETECTIONS)
    out = []
    for image, rows in zip(images, kept):
        rows = rows.float().cpu()
        boxes = np.asarray(scale_boxes(input_hw, rows[:, :4].clone().numpy(), image.shape[:2]))
        out.append(
            Detections(
                xyxy=boxes.astype(np.float32).reshape(-1, 4),
                scores=rows[:, 4].numpy().astype(np.float32),
                classes=rows[:, 5].numpy().astype(np.int64),
                class_scores=None if end2end
                else rows[:, 6 : 6 + nc].numpy().astype(np.float32),
            )
        )
    return out


class YoloDecoding:
    """``predict`` for every YOLO runtime (PyTorch, ONNX, TorchScript): the subclass gives
    :meth:`head`, the letterboxed batch through its network; decoding is shared."""

    _classes: tuple[str, ...]
    iou: float
    end2end: bool = False

    def head(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, tuple[int, int]]:
        """The head output (B, 4 + nc, anchors) on CPU or device, and the input (H, W) px."""
        raise NotImplementedError

    @property
    def classes(self) -> tuple[str, ...]:
        return self._classes

    @torch.inference_mode()
    def predict(self, images: Sequence[np.ndarray], conf: float) -> list[Detections]:
        """Detections per image (channels in recipe order), score >= conf."""
        if not images:
            return []
        raw, input_hw = self.head(images)
        return decode_output(raw, images, input_hw, nc=len(self._classes), conf=conf,
                             iou=self.iou, end2end=self.end2end)
