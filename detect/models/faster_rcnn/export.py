"""Faster R-CNN to ONNX and TorchScript, the ways torchvision documents for its detectors.

- ONNX: ``torch.onnx.export`` with the TorchScript-based exporter (``dynamo=False``), as
  torchvision's detection models and ONNX tests use it: the input is a list holding one
  [3, H, W] image, H and W are dynamic axes (the graph resizes to ``imgsz`` itself, as
  torchvision's ``GeneralizedRCNNTransform`` does), and the outputs are ``boxes`` [N, 4]
  (xyxy px of the input image), ``labels`` [N] (1-based) and ``scores`` [N]. One image per
  run: torchvision's exported detectors do not batch.
- TorchScript: ``torch.jit.script`` (torchvision's detectors are scriptable); the scripted
  model returns ``(losses, detections)``.

Both run on the CPU, in eval mode, with the model's own thresholds (score 0.001,
100 detections per image, its NMS IoU) baked in.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402
from torchvision.models.detection import FasterRCNN  # noqa: E402

from detect.errors import EnvironmentProblem  # noqa: E402
from detect.runs import ModelInfo  # noqa: E402

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAMES = ("boxes", "labels", "scores")


def export_onnx(net: FasterRCNN, path: Path, *, imgsz: int, opset: int) -> None:
    """Write ``net`` (eval mode, CPU) as ONNX with a dynamic input size.

    Raises:
        EnvironmentProblem: torch's ONNX exporter failed (message says why).
    """
    example = [torch.rand(3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))]
    dynamic = {INPUT_NAME: {1: "height", 2: "width"}}
    dynamic.update({name: {0: "detections"} for name in OUTPUT_NAMES})
    try:
        with warnings.catch_warnings():
            # the TorchScript-based exporter warns that it is deprecated, and the tracer
            # warns about Python values it records as constants (torchvision's own shapes)
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net.eval().cpu(), (example,), str(path), opset_version=opset, dynamo=False,
                input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                dynamic_axes=dynamic,
            )
    except Exception as exc:  # the exporter raises many types; all mean "could not export"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EnvironmentProblem(
            f"torch.onnx could not export this Faster R-CNN ({type(exc).__name__}: "
            f"{first[:200]}); check that torch and torchvision are the pinned pair"
        ) from None


def export_torchscript(net: FasterRCNN, path: Path) -> None:
    """Write ``net`` (eval mode, CPU) scripted with ``torch.jit.script``.

    Raises:
        EnvironmentProblem: scripting failed.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notices
            torch.jit.save(torch.jit.script(net.eval().cpu()), str(path))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EnvironmentProblem(
            f"torch.jit.script could not script this Faster R-CNN ({type(exc).__name__}: "
            f"{first[:200]}); check that torch and torchvision are the pinned pair"
        ) from None


def export_faster_rcnn(fmt: str, info: ModelInfo, weights: Path, work_dir: Path,
                       opset: int) -> Path:
    """Export a run's Faster R-CNN ``weights`` as ``fmt`` (``onnx``, ``torchscript``) into
    ``work_dir``; returns the file.

    Raises:
        RunFolderError: the weights do not fit model.json.
        EnvironmentProblem: the exporter failed.
    """
    from detect.models.faster_rcnn.network import FasterRCNNDetector

    net = FasterRCNNDetector.load(weights, classes=info.classes, imgsz=info.imgsz, iou=info.iou,
                                  backbone=str(info.manifest.get("backbone")), device="cpu").net
    path = work_dir / f"model.{fmt}"
    if fmt == "onnx":
        export_onnx(net, path, imgsz=info.imgsz, opset=opset)
    else:
        export_torchscript(net, path)
    return path
