"""torchvision Faster R-CNN: model building, weight loading, and the Detector adapter.

Backbones (``--backbone``):

- ``resnet50_fpn_v2`` (default): ResNet-50 with an FPN over strides 4-32 (P2-P6) and
  BatchNorm in the backbone, FPN, RPN and box heads (torchvision's "v2", Li et al. 2021).
  We pick it for Lung-PET-CT-Dx because (1) the tumours run from ~8 px nodules to
  ~250 px masses on 512 px slices, and only this backbone has a stride-4 level for the
  small ones (mobilenet's FPN starts at stride 16, where a 10 px nodule is less than one
  feature cell); (2) detect is offline and trains from scratch unless ``--weights`` is
  given, and the v2 design with BatchNorm everywhere is the one torchvision's authors
  showed trains well from random initialisation; (3) at 512 px it fits one modest GPU
  (43 M parameters; 512 px is about a third of the pixels of torchvision's COCO
  setting, where this model trains 2 images per GPU in a few GB; batch 8 with AMP should
  stay well under 16 GB, an estimate not measured on a GPU yet).
- ``mobilenet_v3_large_fpn``: about 19 M parameters and 3-4x faster; for CPUs, quick
  experiments and larger tumours.

Anchors are 16-256 px (torchvision's COCO default is 32-512 px, too coarse for small
nodules); the count per location is unchanged, so torchvision's COCO checkpoints still
load into the backbone, FPN and RPN. The model's own transform resizes each image so that
its longer side is ``imgsz`` px (``min_size = max_size = imgsz``) and normalises with the
ImageNet mean and std, as the COCO checkpoints expect.

Nothing downloads: models are built with ``weights=None, weights_backbone=None``, and
``--weights PATH`` loads a local file with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402  (after the check, so a broken pair fails with one line)
from torch import nn  # noqa: E402
from torchvision.models.detection import (  # noqa: E402
    FasterRCNN,
    fasterrcnn_mobilenet_v3_large_fpn,
    fasterrcnn_resnet50_fpn_v2,
)
from torchvision.models.detection.anchor_utils import AnchorGenerator  # noqa: E402

from detect.errors import ConfigError, RunFolderError  # noqa: E402
from detect.frcnn_config import BACKBONES, DEFAULT_BACKBONE, check_backbone  # noqa: E402
from detect.models.detector import Detections, torch_device  # noqa: E402

log = logging.getLogger(__name__)
__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "FasterRCNNDetector",
    "build_model",
    "load_pretrained",
    "read_checkpoint",
]

CHECKPOINT_FORMAT = "detect-fasterrcnn"
#: Score threshold inside the model: low, so validation mAP sees the whole ranking; the
#: operating threshold (``--conf``) is applied afterwards.
BOX_SCORE_THRESH = 0.001
DETECTIONS_PER_IMAGE = 100
ANCHOR_SIZES_PX = (16, 32, 64, 128, 256)


def _anchors(backbone: str) -> AnchorGenerator:
    ratios = (0.5, 1.0, 2.0)
    if backbone == "resnet50_fpn_v2":  # one size per FPN level P2..P6
        return AnchorGenerator(tuple((s,) for s in ANCHOR_SIZES_PX), (ratios,) * 5)
    return AnchorGenerator((ANCHOR_SIZES_PX,) * 3, (ratios,) * 3)  # mobilenet: 3 maps


def build_model(
    backbone: str, num_classes: int, imgsz: int, *, nms_iou: float = 0.5
) -> FasterRCNN:
    """A randomly initialised Faster R-CNN (``num_classes`` includes background 0).

    Raises:
        ConfigError: unknown backbone, fewer than 2 classes, or imgsz < 32 px.
    """
    check_backbone(backbone)
    if num_classes < 2:
        raise ConfigError(f"num_classes counts background too: expected >= 2, got {num_classes}")
    if imgsz < 32:
        raise ConfigError(f"imgsz must be >= 32 px, got {imgsz}")
    kwargs: dict[str, Any] = {
        "weights": None,
        "weights_backbone": None,
        "num_classes": num_classes,
        "min_size": imgsz,
        "max_size": imgsz,
        "box_score_thresh": BOX_SCORE_THRESH,
        "box_nms_thresh": nms_iou,
        "box_detections_per_img": DETECTIONS_PER_IMAGE,
    }
    builder = (
        fasterrcnn_resnet50_fpn_v2 if backbone == "resnet50_fpn_v2"
        else fasterrcnn_mobilenet_v3_large_fpn
    )
    model = builder(**kwargs)
    # The builders fix their own anchor generator (passing one is a duplicate argument);
    # ours has the same number of anchors per location, so the RPN head fits it as built.
    model.rpn.anchor_generator = _anchors(backbone)
    return model


def read_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` on the CPU, as a dict.

    Raises:
        ConfigError: missing, or not a weights-only loadable dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"--weights {path} is not a file; pass a local checkpoint (nothing is downloaded)"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a checkpoint"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"--weights {path} is not a weights-only torch checkpoint ({type(exc).__name__}: "
            f"{first[:200]}); pass a torchvision state_dict or a detect last.pt/best.pt"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"--weights {path}: expected a dict of tensors, got {type(data).__name__}"
        )
    return data


def state_dict_of(data: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The model state dict inside a checkpoint: detect's ``{"model": ...}`` or a plain
    torchvision state dict (``{"model": ...}`` of torchvision's references works too)."""
    inner = data.get("model")
    source = inner if isinstance(inner, Mapping) else data
    return {k: v for k, v in source.items() if isinstance(v, torch.Tensor)}


def load_pretrained(model: nn.Module, path: Path) -> dict[str, int]:
    """Load every tensor of ``path`` whose name and shape fit ``model`` (fine-tuning from a
    torchvision COCO checkpoint keeps all but the class-specific box predictor).

    Returns counts: ``loaded``, ``skipped_shape`` (e.g. 91 COCO classes), ``unused``.

    Raises:
        ConfigError: unreadable file, or no tensor fits this backbone.
    """
    source = state_dict_of(read_checkpoint(path))
    target = model.state_dict()
    fitting = {k: v for k, v in source.items() if k in target and v.shape == target[k].shape}
    wrong_shape = [k for k in source if k in target and k not in fitting]
    if not fitting:
        raise ConfigError(
            f"--weights {path}: none of its {len(source)} tensors fit this Faster R-CNN "
            f"backbone; pass a checkpoint of the same --backbone"
        )
    model.load_state_dict(fitting, strict=False)
    counts = {
        "loaded": len(fitting),
        "skipped_shape": len(wrong_shape),
        "unused": len([k for k in source if k not in target]),
    }
    log.info("loaded %s from %s (shape mismatch: %s)", counts, path, wrong_shape[:4])
    return counts


def images_to_tensors(images: Sequence[np.ndarray], device: str) -> list[torch.Tensor]:
    """H x W x 3 uint8 arrays → float [3, H, W] tensors in [0, 1] on ``device``."""
    out = []
    for image in images:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected H x W x 3 uint8 images, got {image.shape} {image.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        out.append(tensor.to(device).float().div_(255.0))
    return out


def to_detections(output: Mapping[str, torch.Tensor], conf: float) -> Detections:
    """One torchvision output dict → :class:`Detections` (0-based classes, score >= conf)."""
    keep = output["scores"] >= conf
    return Detections(
        xyxy=output["boxes"][keep].detach().float().cpu().numpy().reshape(-1, 4),
        scores=output["scores"][keep].detach().float().cpu().numpy(),
        classes=(output["labels"][keep].detach().cpu().numpy() - 1).astype(np.int64),
        class_scores=None,
    )


class FasterRCNNDetector:
    """A trained Faster R-CNN behind :class:`detect.models.detector.Detector`.

    Preprocessing is the model's own transform (resize to ``imgsz``, ImageNet
    normalisation); boxes come back in the input image's px. ``class_scores`` is None:
    torchvision's box head keeps one class per box.
    """

    def __init__(self, net: FasterRCNN, classes: tuple[str, ...], device: str) -> None:
        self.net, self._classes, self._device = net, classes, device

    @property
    def classes(self) -> tuple[str, ...]:
        return self._classes

    @property
    def device(self) -> str:
        return self._device

    @classmethod
    def load(
        cls,
        weights: Path,
        *,
        classes: Sequence[str],
        imgsz: int,
        iou: float,
        backbone: str,
        device: str = "auto",
    ) -> FasterRCNNDetector:
        """Load a detect Faster R-CNN checkpoint (best.pt / last.pt) for inference.

        Raises:
            RunFolderError: not loadable, another backbone, or other classes.
        """
        if backbone not in BACKBONES:
            raise RunFolderError(
                f"{weights}: model.json names backbone {backbone!r}, expected one of "
                f"{', '.join(BACKBONES)}; the run folder is not a detect Faster R-CNN run"
            )
        try:
            data = read_checkpoint(weights)
            net = build_model(backbone, len(classes) + 1, imgsz, nms_iou=iou)
        except ConfigError as exc:
            raise RunFolderError(str(exc)) from None
        saved = data.get("classes")
        if saved is not None and list(saved) != list(classes):
            raise RunFolderError(
                f"{weights} predicts classes {list(saved)}, but its model.json says "
                f"{list(classes)}; the run folder is inconsistent, retrain or restore its files"
            )
        try:
            net.load_state_dict(state_dict_of(data))
        except RuntimeError as exc:
            raise RunFolderError(
                f"{weights} does not fit a {backbone} Faster R-CNN with {len(classes)} classes "
                f"({str(exc).splitlines()[0]}); pass the weights of this run"
            ) from None
        target = torch_device(device)
        return cls(net.to(target).eval(), tuple(classes), target)

    @torch.inference_mode()
    def predict(self, images: Sequence[np.ndarray], conf: float) -> list[Detections]:
        """Detections per image (channels in recipe order), score >= conf."""
        if not images:
            return []
        outputs = self.net(images_to_tensors(images, self._device))
        return [to_detections(output, conf) for output in outputs]
