"""``detect export``: a trained model as ONNX or TorchScript, checked against PyTorch.

``export_model(ExportConfig(weights=W, format="onnx"))`` writes into ``OUT``::

    OUT/model.onnx | model.torchscript   the exported model
    OUT/model.json                       the run's model.json, with ``weights.best`` naming
                                         the exported file and an ``export`` section: format,
                                         file, sha256, opset, input, stride, parity, source,
                                         versions (see detect.models.runtime.record)
    OUT/README.md, OUT/CARD.md           what the model is and the command that runs it
                                         (detect.export.readme); the run's card, if any

so ``detect predict --weights OUT/model.onnx`` (or ``--weights OUT``) runs it through ONNX
Runtime with the preprocessing of the PyTorch path. Each family exports itself
(:meth:`detect.models.family.Family.export`):

- YOLO: ultralytics' public exporter (``YOLO(yaml).load(net).export``: the network built
  by detect and filled from the checkpoint's tensors, never unpickled by ultralytics) on
  the CPU; ONNX with dynamic batch and size, onnxslim-simplified; TorchScript traced at
  ``imgsz`` (:mod:`detect.models.yolo.export`).
- Faster R-CNN: ``torch.onnx.export`` (dynamic H, W) and ``torch.jit.script``
  (:mod:`detect.models.faster_rcnn.export`).

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

from detect.errors import (
    ConfigError,
    EnvironmentProblem,
    ExportError,
    RunFolderError,
)
from detect.export.outdir import choose_export_out
from detect.export.parity import ParityResult, check_parity, parity_images
from detect.export.readme import write_readme
from detect.models.base import Detector
from detect.models.detector import load_detector
from detect.models.family import Family
from detect.models.registry import family_of
from detect.models.runtime.record import EXPORT_SUFFIXES, file_sha256
from detect.runs import (
    ModelInfo,
    now_iso,
    resolve_weights,
    software_versions,
    write_model_json,
)
from detect.torch_check import require_training_packages

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("onnx", "torchscript")
SUFFIX = {fmt: suffix for suffix, fmt in EXPORT_SUFFIXES.items()}
#: ONNX opset 17: every ONNX Runtime since 1.14 runs it, and it has every operator both
#: families need (Resize, RoiAlign, NonMaxSuppression); ``opset`` may raise it.
ONNX_OPSET = 17


@dataclass(frozen=True)
class ExportConfig:
    """Options of ``detect export``. ``out`` None = ./export-<format>[-N]."""

    weights: Path
    format: str
    out: Path | None = None
    opset: int = ONNX_OPSET
    #: Replace an earlier export in ``out`` (detect.export.outdir); without it, refused.
    overwrite: bool = False

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


def _source(weights: Path, fmt: str) -> tuple[ModelInfo, Path, Family]:
    info, path = resolve_weights(weights)
    if path.suffix in EXPORT_SUFFIXES or "export" in info.manifest:
        raise RunFolderError(
            f"{weights} is already an exported model; pass the run folder written by detect "
            f"train (model.json 'export.source' names it)"
        )
    family = family_of(info)
    if fmt not in family.export_formats:
        raise RunFolderError(
            f"{info.root}: a {family.name} model cannot be exported to {fmt} (it exports to "
            f"{', '.join(family.export_formats) or 'nothing'})"
        )
    return info, path, family


def _check_tools(fmt: str, family: Family) -> None:
    missing = [name for name in family.export_packages(fmt)
               if importlib.util.find_spec(name) is None]
    if missing:
        raise EnvironmentProblem(
            f"{fmt} export needs {', '.join(missing)}, which is not installed (detect never "
            f"installs at run time); pip install {' '.join(missing)}"
        )


def _versions() -> dict[str, str]:
    versions = software_versions()
    for package in ("onnx", "onnxruntime", "onnxslim"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _record(info: ModelInfo, weights: Path, reference: Detector, config: ExportConfig,
            target: Path, family: Family) -> dict[str, Any]:
    return {
        "format": config.format,
        "file": target.name,
        "sha256": file_sha256(target),
        "opset": config.opset if config.format == "onnx" else None,
        "input": family.export_input(config.format, info.imgsz),
        "stride": family.export_stride(reference),
        "source": {"run": str(info.root.resolve()), "weights": str(weights.resolve()),
                   "sha256": file_sha256(weights)},
        "versions": _versions(),
        "created": now_iso(),
    }


def _exported_info(info: ModelInfo, out: Path, record: Mapping[str, Any]) -> ModelInfo:
    manifest = {**info.manifest, "weights": {"best": record["file"]}, "export": dict(record)}
    return ModelInfo(root=out, manifest=manifest)


def _parity(info: ModelInfo, family: Family, reference: Detector, exported: Detector
            ) -> ParityResult:
    return check_parity(reference, exported, parity_images(info.recipe, info.imgsz),
                        cap=family.max_detections, nms_iou=info.iou,
                        compare_head=family.compares_raw_head)


def export_model(config: ExportConfig) -> ExportResult:
    """Export ``config.weights`` and check it against PyTorch (module docstring).

    Raises:
        RunFolderError: W is not a detect run of a family that exports to the format, or
            is an export.
        EnvironmentProblem: onnx / onnxruntime / onnxslim missing, or the exporter failed.
        ConfigError: options.
        OutputFolderError: the output folder holds an export (without ``overwrite``),
            another model or other files, or cannot be created.
        ExportError: the parity check failed (the exported file is removed).
    """
    start = time.monotonic()
    require_training_packages("detect export")
    info, weights, family = _source(config.weights, config.format)
    _check_tools(config.format, family)
    created = config.out is None or not config.out.exists()  # a failed export removes it
    out = choose_export_out(config.out, config.format, config.overwrite)
    target = out / f"model{SUFFIX[config.format]}"
    try:
        reference = load_detector(info, weights, "cpu")
        record, parity = _export_and_check(info, weights, family, config, reference, target)
    except BaseException:
        target.unlink(missing_ok=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)  # everything in it was written here
        raise
    path = write_model_json(out, _exported_info(info, out, record).manifest)
    write_readme(out, info, record, parity.summary())
    log.info("exported %s to %s (%s)", info.root, target, parity.summary())
    return ExportResult(out=out, file=target, model_json=path, parity=parity,
                        seconds=time.monotonic() - start)


def _export_and_check(info: ModelInfo, weights: Path, family: Family, config: ExportConfig,
                      reference: Detector, target: Path) -> tuple[dict[str, Any], ParityResult]:
    """Export into ``target``, read it back and run the parity check; the record of
    model.json's ``export`` section.

    Raises:
        ExportError: parity failed (what differs, where, and what to do).
    """
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        family.export(config.format, info, weights, work, config.opset).replace(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record = _record(info, weights, reference, config, target, family)
    exported = _exported_info(info, target.parent, record)
    opened = family.open_exported(config.format, exported, target, record, "cpu")
    parity = _parity(info, family, reference, opened)
    record["parity"] = parity.to_dict()
    if not parity.passed:
        versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items()
                             if k in ("torch", "torchvision", "ultralytics", "onnxruntime"))
        raise ExportError(
            f"parity check failed, {target.name} removed: on the same {parity.images} phantom "
            f"images the exported model does not find what PyTorch finds ({parity.summary()}; "
            f"{len(parity.failures)} differences, the first: {parity.failures[0]}); the "
            f"export is not usable: keep predicting with the run folder, try the other "
            f"--format, and report it with the versions ({versions})"
        )
    return record, parity
