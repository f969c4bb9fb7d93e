"""``detect export``: a trained model as ONNX or TorchScript, checked against PyTorch.

``export_model(ExportConfig(weights=W, format="onnx"))`` writes into ``OUT``::

    OUT/model.onnx | model.torchscript   the exported model
    OUT/model.json                       the run's model.json, with ``weights.best`` naming
                                         the exported file and an ``export`` section: format,
                                         file, sha256, opset, input, stride, parity, source,
                                         versions (see detect.models.runtime.record)

so ``detect predict --weights OUT/model.onnx`` (or ``--weights OUT``) runs it through ONNX
Runtime with the preprocessing of the PyTorch path. Families:

- YOLO: ultralytics' public exporter (``YOLO(yaml).load(net).export``: the network built
  by detect and filled from the checkpoint's tensors, never unpickled by ultralytics) on
  the CPU; ONNX with dynamic batch and size, onnxslim-simplified; TorchScript traced at
  ``imgsz``.
- Faster R-CNN: ``torch.onnx.export`` (dynamic H, W) and ``torch.jit.script``
  (:mod:`detect.export.faster_rcnn`).

After every export the parity check (:mod:`detect.export.parity`) runs the exported file
and the PyTorch model on the same phantom slices; a failure removes the exported file and
raises :class:`~detect.errors.ExportError`. Nothing is downloaded or pip-installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detect.errors import ConfigError, EnvironmentProblem, ExportError, RunFolderError
from detect.export.parity import ParityResult, check_parity, parity_images
from detect.models.base import Detector
from detect.models.catalog import FASTER_RCNN, YOLO_FAMILIES
from detect.models.detector import load_detector
from detect.models.runtime.record import EXPORT_SUFFIXES, file_sha256
from detect.runs import (
    MODEL_JSON,
    ModelInfo,
    now_iso,
    resolve_weights,
    software_versions,
    write_model_json,
)

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("onnx", "torchscript")
SUFFIX = {fmt: suffix for suffix, fmt in EXPORT_SUFFIXES.items()}
#: ONNX opset 17: every ONNX Runtime since 1.14 runs it, and it has every operator both
#: families need (Resize, RoiAlign, NonMaxSuppression); ``opset`` may raise it.
ONNX_OPSET = 17
EXPORTABLE = (*YOLO_FAMILIES, FASTER_RCNN)
YOLO_MAX_DETECTIONS = 300  # detect.models.yolo.decode.decode_output


@dataclass(frozen=True)
class ExportConfig:
    """Options of ``detect export``. ``out`` None = ./export-<format>[-N]."""

    weights: Path
    format: str
    out: Path | None = None
    opset: int = ONNX_OPSET

    def __post_init__(self) -> None:
        if self.format not in EXPORT_FORMATS:
            raise ConfigError(
                f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {self.format!r}"
            )
        if self.opset < 17:
            raise ConfigError(f"the ONNX opset must be >= 17, got {self.opset}")


@dataclass(frozen=True)
class ExportResult:
    """What ``detect export`` wrote and what its parity check found."""

    out: Path
    file: Path
    model_json: Path
    parity: ParityResult
    seconds: float


def _source(weights: Path) -> tuple[ModelInfo, Path]:
    info, path = resolve_weights(weights)
    if path.suffix in EXPORT_SUFFIXES or "export" in info.manifest:
        raise RunFolderError(
            f"{weights} is already an exported model; pass the run folder written by detect "
            f"train (model.json 'export.source' names it)"
        )
    if info.family not in EXPORTABLE:
        raise RunFolderError(
            f"{info.root}: model family {info.family!r} cannot be exported (only "
            f"{', '.join(EXPORTABLE)} can)"
        )
    return info, path


def _check_tools(fmt: str, family: str) -> None:
    if fmt != "onnx":
        return
    needed = ["onnx", "onnxruntime"] + (["onnxslim"] if family in YOLO_FAMILIES else [])
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise EnvironmentProblem(
            f"ONNX export needs {', '.join(missing)}, which is not installed (detect never "
            f"installs at run time); pip install {' '.join(missing)}"
        )


def choose_export_out(out: Path | None, fmt: str) -> Path:
    """``--out`` as given (refused if it already holds a model), or a fresh
    ``export-<format>``, ``export-<format>-2``... in the working folder.

    Raises:
        ConfigError: the folder holds a model.json already, or is a file.
    """
    if out is None:
        out, number = Path(f"export-{fmt}"), 1
        while out.exists():
            number += 1
            out = Path(f"export-{fmt}-{number}")
    elif (out / MODEL_JSON).exists():
        raise ConfigError(f"{out} already holds a model (model.json); pass another --out")
    elif out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create output folder {out} ({exc.strerror}); pass --out to a folder you "
            f"can write"
        ) from None
    return out


def _export_file(info: ModelInfo, weights: Path, reference: Detector, config: ExportConfig,
                 work: Path) -> Path:
    if info.family in YOLO_FAMILIES:
        from detect.models.yolo import export_yolo

        return export_yolo(weights, config.format, family=info.family,
                           size=str(info.manifest["size"]), classes=info.classes,
                           imgsz=info.imgsz, work_dir=work, opset=config.opset)
    from detect.export import faster_rcnn as faster_rcnn_export
    from detect.models.faster_rcnn import FasterRCNNDetector

    if not isinstance(reference, FasterRCNNDetector):
        raise TypeError(f"expected a FasterRCNNDetector, got {type(reference).__name__}")
    path = work / f"model{SUFFIX[config.format]}"
    if config.format == "onnx":
        faster_rcnn_export.export_onnx(reference.net, path, imgsz=info.imgsz,
                                       opset=config.opset)
    else:
        faster_rcnn_export.export_torchscript(reference.net, path)
    return path


def _input_spec(family: str, fmt: str, imgsz: int) -> dict[str, Any]:
    if family in YOLO_FAMILIES:
        return {
            "name": "images", "dtype": "float32", "range": [0.0, 1.0], "size_px": imgsz,
            "shape": ["batch", 3, "height", "width"] if fmt == "onnx"
            else ["batch", 3, imgsz, imgsz],
            "preprocess": f"ultralytics letterbox to {imgsz} x {imgsz} px (aspect kept, "
            f"centred, pad 114), channels in recipe order, /255",
            "output": "(batch, 4 + classes, anchors): box cx, cy, w, h in input px, then "
            "class sigmoids; NMS runs outside the graph",
        }
    return {
        "name": "image", "dtype": "float32", "range": [0.0, 1.0], "size_px": imgsz,
        "shape": [3, "height", "width"],
        "preprocess": f"none outside the graph: it resizes the longer side to {imgsz} px "
        f"and normalises (ImageNet mean/std); one image per run",
        "output": "boxes [N, 4] xyxy px of the input image, labels [N] 1-based, scores [N]"
        if fmt == "onnx" else "(losses, [{boxes, labels, scores}]) as torchvision scripted",
    }


def _versions() -> dict[str, str]:
    versions = software_versions()
    for package in ("onnx", "onnxruntime", "onnxslim"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _record(info: ModelInfo, weights: Path, reference: Detector, config: ExportConfig,
            target: Path) -> dict[str, Any]:
    yolo = info.family in YOLO_FAMILIES
    record: dict[str, Any] = {
        "format": config.format,
        "file": target.name,
        "sha256": file_sha256(target),
        "opset": config.opset if config.format == "onnx" else None,
        "input": _input_spec(info.family, config.format, info.imgsz),
        "stride": int(getattr(reference, "stride", 32)) if yolo else None,
        "source": {"run": str(info.root.resolve()), "weights": str(weights.resolve()),
                   "sha256": file_sha256(weights)},
        "versions": _versions(),
        "created": now_iso(),
    }
    return record


def _exported_info(info: ModelInfo, out: Path, record: Mapping[str, Any]) -> ModelInfo:
    manifest = {**info.manifest, "weights": {"best": record["file"]}, "export": dict(record)}
    return ModelInfo(root=out, manifest=manifest)


def _open(info: ModelInfo, target: Path, record: Mapping[str, Any]) -> Detector:
    if record["format"] == "onnx":
        from detect.models.runtime.onnx import open_onnx_detector

        return open_onnx_detector(info, target, record, "cpu")
    from detect.models.runtime.torchscript import open_torchscript_detector

    return open_torchscript_detector(info, target, record, "cpu")


def _parity(info: ModelInfo, reference: Detector, exported: Detector) -> ParityResult:
    if info.family in YOLO_FAMILIES:
        cap = YOLO_MAX_DETECTIONS
    else:
        from detect.models.faster_rcnn import DETECTIONS_PER_IMAGE as cap
    return check_parity(reference, exported, parity_images(info.recipe, info.imgsz), cap=cap,
                        nms_iou=info.iou)


def export_model(config: ExportConfig) -> ExportResult:
    """Export ``config.weights`` and check it against PyTorch (module docstring).

    Raises:
        RunFolderError: W is not a detect run of an exportable family, or is an export.
        EnvironmentProblem: onnx / onnxruntime / onnxslim missing, or the exporter failed.
        ConfigError: options, or an output folder that cannot be used.
        ExportError: the parity check failed (the exported file is removed).
    """
    start = time.monotonic()
    info, weights = _source(config.weights)
    _check_tools(config.format, info.family)
    out = choose_export_out(config.out, config.format)
    reference = load_detector(info, weights, "cpu")
    target = out / f"model{SUFFIX[config.format]}"
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    try:
        _export_file(info, weights, reference, config, work).replace(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record = _record(info, weights, reference, config, target)
    exported = _exported_info(info, out, record)
    parity = _parity(info, reference, _open(exported, target, record))
    record["parity"] = parity.to_dict()
    if not parity.passed:
        target.unlink(missing_ok=True)
        raise ExportError(
            f"parity check failed, {target.name} removed: {parity.summary()}; first "
            f"difference: {parity.failures[0]}"
        )
    path = write_model_json(out, _exported_info(info, out, record).manifest)
    log.info("exported %s to %s (%s)", info.root, target, parity.summary())
    return ExportResult(out=out, file=target, model_json=path, parity=parity,
                        seconds=time.monotonic() - start)
