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
from detect.models.yolo.checkpoint import read_yolo_checkpoint  # noqa: E402
from detect.models.yolo.config import YoloVariant  # noqa: E402
from detect.models.yolo.decode import YoloDecoding, model_input  # noqa: E402
from detect.models.yolo.network import build_network, load_exactly  # noqa: E402


class YoloDetector(YoloDecoding):
    """A trained YOLO detection model behind the :class:`Detector` interface.

    Preprocessing and decoding are :mod:`detect.models.yolo.decode`'s, the same numpy code
    every YOLO runtime uses (ultralytics' letterbox and NMS rules), so an exported model
    gives the same boxes.
    """

    def __init__(
        self, net: Any, classes: tuple[str, ...], imgsz: int, iou: float, device: str,
        end2end: bool = False,
    ) -> None:
        self.net, self._classes, self.imgsz, self.iou, self._device = (
            net, classes, imgsz, iou, device,
        )
        self.end2end = end2end
        self.stride = int(max(getattr(net, "stride", torch.tensor([32])).max().item(), 32))

    @property
    def device(self) -> str:
        return self._device

    @classmethod
    def load(
        cls, weights: Path, *, variant: YoloVariant, size: str, classes: Sequence[str],
        imgsz: int, iou: float, device: str,
    ) -> YoloDetector:
        """Read ``weights`` with detect's safe reader (tensors and names only,
        :mod:`detect.models.yolo.checkpoint`), build the variant at ``size`` from
        ultralytics' bundled YAML and load the tensors into it; the classes must be
        model.json's. An NMS-free variant runs its one-to-one head.

        Raises:
            RunFolderError: refused, not a YOLO detection checkpoint, other classes, or
                weights of another architecture than model.json's.
        """
        checkpoint = read_yolo_checkpoint(weights)
        if checkpoint.names != tuple(classes):
            raise RunFolderError(
                f"{weights} predicts classes {list(checkpoint.names)}, but its model.json says "
                f"{list(classes)}; the run folder is inconsistent, retrain or restore its files"
            )
        family = variant.name
        net = build_network(family, size, checkpoint.names)
        load_exactly(net, checkpoint.state, weights,
                     f"{family}{size} weights for {len(classes)} classes")
        target = torch_device(device)
        net = net.float().to(target).eval()
        net.end2end = variant.end2end  # which head runs (fuse drops the other)
        net = net.fuse(verbose=False)  # Conv+BN folded, as ultralytics' predictor does
        return cls(net, tuple(classes), imgsz, iou, target, end2end=variant.end2end)

    @torch.inference_mode()
    def head(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, tuple[int, int]]:
        """The head output ((B, 4 + nc, anchors), or (B, k, 6) NMS-free) and the letterboxed
        input's (H, W) px."""
        x = torch.from_numpy(model_input(images, self.imgsz)).to(self._device)
        raw = self.net(x)
        raw = raw[0] if isinstance(raw, (list, tuple)) else raw
        return raw.float().cpu().numpy(), (x.shape[2], x.shape[3])


def names_of(mapping: Mapping[int, str]) -> list[str]:
    """Class names in index order from ultralytics' ``{index: name}`` mapping."""
    return [str(mapping[i]) for i in sorted(mapping)]
