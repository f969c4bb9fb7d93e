"""YOLO to ONNX or TorchScript through ultralytics' public ``YOLO(...).export``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detect.errors import RunFolderError
from detect.models.checkpoint import load_fault
from detect.models.yolo.checkpoint import read_yolo_checkpoint
from detect.models.yolo.config import YoloVariant
from detect.models.yolo.env import prepare_ultralytics, threads_kept
from detect.models.yolo.network import build_network, load_exactly, write_architecture


def export_yolo(
    weights: Path, fmt: str, *, variant: YoloVariant, size: str, classes: Sequence[str],
    imgsz: int, work_dir: Path, opset: int,
) -> Path:
    """Export ``weights`` with ultralytics' public ``YOLO(...).export`` on the CPU: ONNX with
    dynamic batch and size, simplified (onnxslim), at ``opset``; TorchScript traced at
    ``imgsz``.

    An NMS-free head (``variant.end2end``) is exported as it runs: the graph ends with the
    head's top-k (ultralytics' ``nms=False``).

    ultralytics never opens ``weights``: detect reads its tensors
    (:mod:`detect.models.yolo.checkpoint`) into ``family`` ``size`` built from the bundled
    YAML, and ultralytics gets a ``YOLO`` made from that YAML (with ``nc`` = the number of
    classes, written in ``work_dir``) loaded from that network. The exported file lands in
    ``work_dir`` (nothing in the run folder, nothing in the current folder). Returns the
    exported file.

    Raises:
        RunFolderError: the checkpoint is refused or does not fit, or ultralytics could not
            export it.
    """
    family = variant.name
    checkpoint = read_yolo_checkpoint(weights)
    net = build_network(family, size, classes)
    load_exactly(net, checkpoint.state, weights,
                 f"{family}{size} weights for {len(classes)} classes")
    prepare_ultralytics()  # YOLO_AUTOINSTALL=false: its requirement check never pips
    from ultralytics import YOLO

    args: dict[str, Any] = {"format": fmt, "imgsz": imgsz, "device": "cpu", "batch": 1}
    if fmt == "onnx":
        args.update(dynamic=True, simplify=True, opset=opset)
    if variant.end2end:
        args["nms"] = False  # ultralytics: False selects the NMS-free head
    try:
        yolo = YOLO(str(write_architecture(work_dir, family, size, len(classes))),
                    task="detect")
        yolo.load(net)  # ultralytics' public load from a module: names and shapes match
        yolo.model.names = dict(enumerate(classes))  # type: ignore[union-attr]
        # ultralytics names the exported file after the model's source; a model built from
        # a YAML would be written into the current folder, over any file of that name there
        yolo.model.pt_path = str(work_dir / f"{family}{size}.pt")  # type: ignore[union-attr]
        with threads_kept():
            exported = yolo.export(**args)
    except Exception as exc:  # ultralytics raises many types for a model it cannot export
        raise RunFolderError(
            f"ultralytics could not export {weights} to {fmt} ({load_fault(exc)}); pass the "
            f"weights of a detect YOLO run"
        ) from None
    return Path(str(exported))
