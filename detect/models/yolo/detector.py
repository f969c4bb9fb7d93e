"""A trained YOLO behind detect's :class:`~detect.models.base.Detector` interface."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402  (after the check, so a broken pair fails with one line)

from detect.device import torch_device  # noqa: E402
from detect.errors import RunFolderError  # noqa: E402
from detect.models.yolo.decode import YoloDecoding, letterboxed, model_input  # noqa: E402
from detect.models.yolo.env import prepare_ultralytics  # noqa: E402


class YoloDetector(YoloDecoding):
    """A trained YOLO detection model behind the :class:`Detector` interface.

    Preprocessing is ultralytics' own predict path (letterbox to ``imgsz``, pad 114, /255);
    NMS is ultralytics' ``non_max_suppression`` with the per-class scores carried through
    as extra channels, so each box keeps its class-score vector.
    """

    def __init__(
        self, net: Any, classes: tuple[str, ...], imgsz: int, iou: float, device: str
    ) -> None:
        self.net, self._classes, self.imgsz, self.iou, self._device = (
            net, classes, imgsz, iou, device,
        )
        self.stride = int(max(getattr(net, "stride", torch.tensor([32])).max().item(), 32))

    @property
    def device(self) -> str:
        return self._device

    @classmethod
    def load(
        cls, weights: Path, *, classes: Sequence[str], imgsz: int, iou: float, device: str
    ) -> YoloDetector:
        """Load ``weights`` and check its classes against model.json's.

        Raises:
            RunFolderError: not a loadable YOLO detection checkpoint, or other classes.
        """
        prepare_ultralytics()
        from ultralytics import YOLO

        try:
            yolo = YOLO(str(weights), task="detect")
            net: Any = yolo.model
            names = names_of(yolo.names)
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise RunFolderError(
                f"{weights} is not a loadable YOLO checkpoint ({type(exc).__name__}: {first}); "
                f"pass the weights of a detect run"
            ) from None
        if tuple(names) != tuple(classes):
            raise RunFolderError(
                f"{weights} predicts classes {names}, but its model.json says {list(classes)}; "
                f"the run folder is inconsistent, retrain or restore its files"
            )
        target = torch_device(device)
        net = net.float().to(target).eval()
        if hasattr(net, "fuse"):
            net = net.fuse(verbose=False)  # Conv+BN folded, as ultralytics' predictor does
        return cls(net, tuple(classes), imgsz, iou, target)

    @torch.inference_mode()
    def head(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, tuple[int, int]]:
        """The head output (B, 4 + nc, anchors) and the letterboxed input's (H, W) px."""
        x = model_input(letterboxed(images, self.imgsz, self.stride), self._device)
        raw = self.net(x)
        return (raw[0] if isinstance(raw, (list, tuple)) else raw), (x.shape[2], x.shape[3])


def names_of(mapping: Mapping[int, str]) -> list[str]:
    """Class names in index order from ultralytics' ``{index: name}`` mapping."""
    return [str(mapping[i]) for i in sorted(mapping)]
