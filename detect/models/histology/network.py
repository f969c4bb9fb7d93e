"""The histology head: a small torchvision CNN on tumour crops (+ the box's geometry) that
gives A, B, E, G probabilities; its checkpoints; and the predictor ``predict`` uses.

Network (:class:`HistologyNet`): input crops FloatTensor[N, 3, S, S] in [0, 1] (recipe
order), normalised as (x - 0.5) / 0.25; a trunk built with ``weights=None``:

- ``resnet18``: torchvision's ResNet-18 as built (overall stride 32: a 2x2 map for a
  64 px crop), 512 features. A CIFAR-style 3x3 stride-1 stem (stride 16) was tried on the
  phantom: the same val patient balanced accuracy, 4x the FLOPs and 25x the wall time on
  2 CPU cores (a slow oneDNN path), so the stem is torchvision's; a torchvision ResNet-18
  state dict loads whole through ``--weights``;
- ``mobilenet_v3_small``: torchvision's, classifier removed, 576 features.

With ``geometry`` the box's place and size (:func:`detect.models.histology.data.box_geometry`),
encoded as [2 cx - 1, 2 cy - 1, log10(w) + 1, log10(h) + 1] (sides as fractions of the
slice, >= 1e-4), go through a 2-layer MLP (32 units) and are concatenated to the trunk's
features; one linear layer gives the 4 logits. Probabilities are the softmax.

Checkpoints (``weights/best.pt``, ``last.pt``) hold only tensors and primitive containers,
so ``torch.load(path, weights_only=True)`` reads them::

    {"format": "detect-histology", "version": 1, "kind": "best" | "last",
     "backbone": str, "geometry": bool, "classes": ["A", "B", "E", "G"], "imgsz": int,
     "crop": {...}, "epoch": int, "model": state_dict,
     # last.pt only, for --resume: "epochs", "optimizer", "step", "best", "history"}
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402  (after the check, so a broken pair fails with one line)
from torch import nn  # noqa: E402
from torchvision.models import mobilenet_v3_small, resnet18  # noqa: E402

from detect.boxes import XYXY  # noqa: E402
from detect.device import torch_device  # noqa: E402
from detect.errors import ConfigError, RunFolderError  # noqa: E402
from detect.histology import LETTERS  # noqa: E402
from detect.models.checkpoint import read_checkpoint, state_dict_of  # noqa: E402
from detect.models.histology.config import BACKBONES  # noqa: E402
from detect.models.histology.crops import CropSpec, box_geometry, extract_crop  # noqa: E402
from detect.runs import ModelInfo  # noqa: E402

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "detect-histology"
CHECKPOINT_VERSION = 1
GEOMETRY_UNITS = 32
#: Crops per forward pass when predicting.
PREDICT_CHUNK = 256


def _trunk(backbone: str) -> tuple[nn.Module, int]:
    if backbone == "resnet18":
        net = resnet18(weights=None)
        net.fc = nn.Identity()
        return net, 512
    if backbone == "mobilenet_v3_small":
        mobile = mobilenet_v3_small(weights=None)
        mobile.classifier = nn.Identity()
        return mobile, 576
    raise ConfigError(f"histology backbone must be one of {', '.join(BACKBONES)}, got "
                      f"{backbone!r}")


def encode_geometry(geometry: torch.Tensor) -> torch.Tensor:
    """[cx, cy, w, h] (fractions of the slice) → the network's geometry input."""
    centre = geometry[:, :2] * 2.0 - 1.0
    sides = torch.log10(geometry[:, 2:].clamp(min=1e-4)) + 1.0
    return torch.cat([centre, sides], dim=1)


class HistologyNet(nn.Module):
    """Crop (+ geometry) → 4 logits (module docstring)."""

    def __init__(self, backbone: str, geometry: bool = True, classes: int = len(LETTERS)):
        super().__init__()
        self.backbone, self.use_geometry = backbone, geometry
        self.trunk, features = _trunk(backbone)
        self.geometry: nn.Module = nn.Identity()
        if geometry:
            self.geometry = nn.Sequential(
                nn.Linear(4, GEOMETRY_UNITS), nn.ReLU(inplace=True),
                nn.Linear(GEOMETRY_UNITS, GEOMETRY_UNITS), nn.ReLU(inplace=True),
            )
            features += GEOMETRY_UNITS
        self.fc = nn.Linear(features, classes)

    def forward(self, crops: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
        features = self.trunk((crops - 0.5) / 0.25)
        if self.use_geometry:
            features = torch.cat([features, self.geometry(encode_geometry(geometry))], dim=1)
        return self.fc(features)


def load_local_weights(net: HistologyNet, path: Path) -> dict[str, int]:
    """``--weights``: every tensor of a local checkpoint whose name and shape fit (a detect
    histology checkpoint, a state dict of this network, or a torchvision ResNet-18 /
    MobileNetV3-small state dict, whose names are matched under ``trunk.``).

    Raises:
        ConfigError: unreadable, or no tensor fits.
    """
    source = state_dict_of(read_checkpoint(path))
    target = net.state_dict()
    fitting: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        for name in (key, f"trunk.{key}"):
            if name in target and target[name].shape == value.shape:
                fitting[name] = value
                break
    if not fitting:
        raise ConfigError(f"--weights {path}: none of its {len(source)} tensors fit a "
                          f"{net.backbone} histology head; pass a checkpoint of that backbone")
    net.load_state_dict(fitting, strict=False)
    counts = {"loaded": len(fitting), "of": len(target), "unused": len(source) - len(fitting)}
    log.info("loaded %s tensors from %s", counts, path)
    return counts


def checkpoint_header(net: HistologyNet, crop: CropSpec) -> dict[str, Any]:
    """The keys every histology checkpoint starts with (module docstring)."""
    return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "backbone": net.backbone, "geometry": net.use_geometry, "classes": list(LETTERS),
            "imgsz": crop.size, "crop": crop.to_dict()}


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, each row rounded to 6 decimals and summing to 1 (the
    largest entry takes the rounding remainder, so predictions.json sums to 1 too)."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs = np.round(exp / exp.sum(axis=1, keepdims=True), 6)
    for row in probs:
        top = int(np.argmax(row))
        row[top] = round(1.0 - (row.sum() - row[top]), 6)
    return probs


class HistologyHead:
    """A trained head for inference: boxes on a rendered slice → A/B/E/G probabilities."""

    def __init__(self, net: HistologyNet, info: ModelInfo, crop: CropSpec, device: str):
        self.net, self.info, self.crop, self.device = net, info, crop, device

    @property
    def recipe_dict(self) -> dict[str, Any]:
        """The head's channel recipe (model.json), to compare with a detector's."""
        return self.info.recipe.to_dict()

    @classmethod
    def load(cls, info: ModelInfo, weights: Path, device: str = "auto") -> HistologyHead:
        """Load a histology run's checkpoint (``weights_only=True``).

        Raises:
            RunFolderError: not loadable, or not fitting model.json.
        """
        try:
            data = read_checkpoint(weights)
            crop = CropSpec.from_manifest(info.manifest)
        except ConfigError as exc:
            raise RunFolderError(f"{info.root}: {exc}") from None
        if data.get("format") != CHECKPOINT_FORMAT:
            raise RunFolderError(f"{weights}: not a detect histology checkpoint (format "
                                 f"{CHECKPOINT_FORMAT!r} expected, found {data.get('format')!r})")
        backbone = str(info.manifest.get("backbone"))
        try:
            net = HistologyNet(backbone, bool(info.manifest.get("geometry", True)))
            net.load_state_dict(state_dict_of(data))
        except (ConfigError, RuntimeError) as exc:
            raise RunFolderError(
                f"{weights} does not fit the {backbone} head its model.json describes "
                f"({str(exc).splitlines()[0]}); pass the weights of this run"
            ) from None
        target = torch_device(device)
        return cls(net.to(target).eval(), info, crop, target)

    @torch.inference_mode()
    def probabilities(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """float64 (N, 4) A/B/E/G probabilities (rows sum to 1, see :func:`softmax_rows`)
        of xyxy px ``boxes`` (N, 4) on ``image`` (H x W x 3 uint8, the head's recipe)."""
        height, width = image.shape[:2]
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        logits = []
        for start in range(0, len(boxes), PREDICT_CHUNK):
            chunk: list[XYXY] = [(float(b[0]), float(b[1]), float(b[2]), float(b[3]))
                                 for b in boxes[start : start + PREDICT_CHUNK]]
            crops = np.stack([extract_crop(image, b, self.crop) for b in chunk])
            geometry = np.stack([box_geometry(b, width, height) for b in chunk])
            x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
            g = torch.from_numpy(geometry).to(self.device)
            logits.append(self.net(x, g).float().cpu().numpy())
        if not logits:
            return np.zeros((0, len(LETTERS)))
        return softmax_rows(np.concatenate(logits))


def cosine_lr(step: int, total: int, peak: float) -> float:
    """Cosine decay from ``peak`` to 1 % of it over ``total`` steps."""
    progress = min(max(step / max(total, 1), 0.0), 1.0)
    return peak * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def check_checkpoint(data: Mapping[str, Any], path: Path, kind: str) -> None:
    """Raise RunFolderError unless ``data`` is a detect histology ``kind`` checkpoint."""
    if data.get("format") != CHECKPOINT_FORMAT or data.get("version") != CHECKPOINT_VERSION \
            or data.get("kind") != kind:
        raise RunFolderError(
            f"{path}: expected a version {CHECKPOINT_VERSION} {kind!r} histology checkpoint, "
            f"found format {data.get('format')!r} kind {data.get('kind')!r}; start a new run"
        )
