"""torchvision Faster R-CNN: model building, weight loading, and the Detector adapter.

Backbones (``--backbone``):

- ``resnet50_fpn_v2`` (default): ResNet-50 with an FPN over strides 4-32 (P2-P6) and
  BatchNorm in the backbone, FPN, RPN and box heads (torchvision's "v2", Li et al. 2021).
  We pick it for Lung-PET-CT-Dx because (1) the tumours run from ~8 px nodules to
  ~250 px masses on 512 px slices, and only this backbone has a stride-4 level for the
  small ones (mobilenet's starts at stride 8, where a 10 px nodule is about one feature
  cell); (2) detect is offline and trains from scratch unless ``--weights`` is
  given, and the v2 design with BatchNorm everywhere is the one torchvision's authors
  showed trains well from random initialisation; (3) at 512 px it fits one modest GPU
  (43 M parameters; 512 px is about a third of the pixels of torchvision's COCO
  setting, where this model trains 2 images per GPU in a few GB; batch 8 with AMP should
  stay well under 16 GB, an estimate not measured on a GPU yet).
- ``mobilenet_v3_large_fpn``: MobileNetV3-Large with an FPN over strides 8-64, about
  20 M parameters and 3-4x faster than the default; for CPUs and quick experiments.
  torchvision's own builder of that name takes its FPN from the two stride-32 stages only
  (32 and 64 px cells), which cannot place a 15 px lesion; we take the first blocks of the
  stride-8 and stride-16 stages and the last layer (stride 32), as torchvision's
  ``mobilenet_backbone(returned_layers=[2, 3, 5])``. Its body still loads from a
  torchvision checkpoint; its FPN's inner layers do not (other input widths).

Anchors scale with ``imgsz``: ``imgsz / 32 x (1, 2, 4, 8, 16)`` px, so 16-256 px at 512
(8-128 px at 256), because a tumour's size is a fraction of the field of view, not a fixed
number of pixels (torchvision's COCO default, 32-512 px, is too coarse for nodules). The
resnet50 model puts one size on each FPN level P2-P6; mobilenet puts all five on each of its
four maps, as torchvision does. The anchor count per location matches torchvision's, so its
resnet50 COCO checkpoint still loads into the backbone, FPN and RPN (mobilenet: see above).

Sampling is sized for CT slices, which hold one to three tumours, not COCO's dozens of
objects: 128 ROIs per image for the box head (torchvision: 512) and 1000 / 500 RPN
proposals before / after NMS in training (2000 / 2000), 500 / 300 at test (1000 / 1000).
The box head then costs a quarter: at 256 px on 2 CPU cores a batch of 8 trains in 5.7 s
instead of 18 s (resnet50) and 1.5 s instead of 4.4 s (mobilenet), with up to 32 positive
ROIs per image still. An anchor is a positive RPN example from IoU 0.5 with a tumour
(torchvision: 0.7): a 12 px lesion meets at most one anchor at 0.7 on a stride-8 grid, so
the RPN saw about one positive per slice and learnt to call everything background (on a
12-patient phantom, mobilenet at 256 px: the best of 300 proposals overlapped the lesion
at IoU 0.02 after 15 epochs; with 0.5, val mAP50 0.17 by epoch 13).

The model's own transform resizes each image so that its longer side is ``imgsz`` px
(``min_size = max_size = imgsz``) and normalises with the ImageNet mean and std, as the
COCO checkpoints expect.

Nothing downloads: models are built with ``weights=None, weights_backbone=None``, and
``--weights PATH`` loads a local file with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402  (after the check, so a broken pair fails with one line)
from torch import nn  # noqa: E402
from torchvision.models.detection import FasterRCNN, fasterrcnn_resnet50_fpn_v2  # noqa: E402
from torchvision.models.detection.anchor_utils import AnchorGenerator  # noqa: E402
from torchvision.models.detection.backbone_utils import mobilenet_backbone  # noqa: E402

from detect.device import torch_device  # noqa: E402
from detect.errors import ConfigError, RunFolderError  # noqa: E402
from detect.models.base import Detections  # noqa: E402
from detect.models.checkpoint import read_checkpoint, state_dict_of  # noqa: E402
from detect.models.faster_rcnn.config import (  # noqa: E402
    BACKBONES,
    DEFAULT_BACKBONE,
    DETECTIONS_PER_IMAGE,
    check_backbone,
)
from detect.models.faster_rcnn.runtime import (  # noqa: E402
    detections_of,
    image_input,
    same_size_batches,
)

log = logging.getLogger(__name__)
__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "FasterRCNNDetector",
    "build_model",
    "load_pretrained",
]

CHECKPOINT_FORMAT = "detect-fasterrcnn"
#: 2: anchors scale with imgsz, CT-sized ROI sampling, mobilenet FPN from stride 8.
CHECKPOINT_VERSION = 2
#: Score threshold inside the model: low, so validation mAP sees the whole ranking; the
#: operating threshold (``--conf``) is applied afterwards.
BOX_SCORE_THRESH = 0.001
ANCHOR_MULTIPLES = (1, 2, 4, 8, 16)
ANCHOR_RATIOS = (0.5, 1.0, 2.0)
#: MobileNetV3-Large stages (torchvision's stage numbering) feeding the FPN: strides 8, 16, 32.
MOBILENET_FPN_STAGES = [2, 3, 5]
#: ROI and proposal budgets for slices with one to three tumours (module docstring).
SAMPLING: dict[str, float] = {
    "rpn_fg_iou_thresh": 0.5,
    "box_batch_size_per_image": 128,
    "rpn_pre_nms_top_n_train": 1000,
    "rpn_post_nms_top_n_train": 500,
    "rpn_pre_nms_top_n_test": 500,
    "rpn_post_nms_top_n_test": 300,
}


def anchor_sizes(imgsz: int) -> tuple[int, ...]:
    """Anchor side lengths in px for a model that sees ``imgsz`` px images:
    ``imgsz / 32 x (1, 2, 4, 8, 16)``, at least 4 px."""
    return tuple(max(4, round(imgsz / 32 * multiple)) for multiple in ANCHOR_MULTIPLES)


def _anchors(backbone: str, imgsz: int) -> AnchorGenerator:
    sizes = anchor_sizes(imgsz)
    if backbone == "resnet50_fpn_v2":  # one size per FPN level P2..P6
        return AnchorGenerator(tuple((size,) for size in sizes), (ANCHOR_RATIOS,) * len(sizes))
    maps = len(MOBILENET_FPN_STAGES) + 1  # + the FPN's max-pool level
    return AnchorGenerator((sizes,) * maps, (ANCHOR_RATIOS,) * maps)


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
        "num_classes": num_classes,
        "min_size": imgsz,
        "max_size": imgsz,
        "box_score_thresh": BOX_SCORE_THRESH,
        "box_nms_thresh": nms_iou,
        "box_detections_per_img": DETECTIONS_PER_IMAGE,
        **SAMPLING,
    }
    if backbone == "resnet50_fpn_v2":
        model = fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, **kwargs)
        # The builder fixes its own anchor generator (passing one is a duplicate argument);
        # ours has the same number of anchors per location, so the RPN head fits it as built.
        model.rpn.anchor_generator = _anchors(backbone, imgsz)
        return model
    body = mobilenet_backbone(
        backbone_name="mobilenet_v3_large", weights=None, fpn=True, trainable_layers=6,
        returned_layers=MOBILENET_FPN_STAGES, norm_layer=nn.BatchNorm2d,
    )
    return FasterRCNN(body, rpn_anchor_generator=_anchors(backbone, imgsz), **kwargs)




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


class FasterRCNNDetector:
    """A trained Faster R-CNN behind :class:`detect.models.base.Detector`.

    Preprocessing is the model's own transform (resize to ``imgsz``, ImageNet
    normalisation); boxes come back in the input image's px. ``class_scores`` is None:
    torchvision's box head keeps one class per box. Images of different sizes run in
    separate batches (:func:`same_size_batches`).
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
        if data.get("format") == CHECKPOINT_FORMAT and data.get("version") != CHECKPOINT_VERSION:
            raise RunFolderError(
                f"{weights} is a version {data.get('version')!r} Faster R-CNN checkpoint; this "
                f"detect reads version {CHECKPOINT_VERSION} (other anchors and sampling): retrain"
            )
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
        found: dict[int, Detections] = {}
        for batch in same_size_batches(images):
            outputs = self.net([torch.from_numpy(image_input(images[i])).to(self._device)
                                for i in batch])
            found.update((i, detections_of(o, conf)) for i, o in zip(batch, outputs))
        return [found[i] for i in range(len(images))]
