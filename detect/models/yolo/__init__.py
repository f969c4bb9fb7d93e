"""YOLOv8 / YOLO11 through ultralytics' public API: training, loading, export.

This package is the only importer of ultralytics. :mod:`detect.models.yolo.env` makes it
offline before its first import (no online checks, no pip installs, no font fetch,
integrations off); :mod:`detect.models.yolo.decode` holds the letterbox and NMS that every
YOLO runtime (PyTorch, ONNX, TorchScript) shares. Nothing downloads at run time:

- Models are built from the architecture YAML (``yolov8n.yaml``) when no ``--weights`` is
  given, and ``pretrained=False``.
- AMP: ultralytics' fp16 AMP check fetches ``yolo26n.pt``. ``amp="auto"`` therefore uses
  ``bf16`` on GPUs that support it (no check), fp16 only when the check weights are already
  in ultralytics' ``weights_dir``, and fp32 otherwise; CPU training is fp32. An explicit
  ``amp="fp16"`` runs ultralytics' check as it is (a fetch attempt without those weights).
- Several GPUs (``device="0,1"``): ultralytics' own DDP subprocess; it inherits the
  environment above. The per-epoch callback runs only in single-process training, so
  with DDP ``metrics.csv`` is written when training ends.

Checkpoints are ultralytics' pickled ``.pt`` files (``weights_only=True`` cannot load
them): load only weights you trust.
"""

from __future__ import annotations

import csv
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402  (after the check, so a broken pair fails with one line)

from detect.errors import ConfigError, RunFolderError  # noqa: E402
from detect.models.detector import torch_device  # noqa: E402
from detect.models.yolo.decode import YoloDecoding, letterboxed, model_input  # noqa: E402
from detect.models.yolo.env import prepare_ultralytics  # noqa: E402

__all__ = ["YoloDetector", "YoloTrainSpec", "export_yolo", "prepare_ultralytics"]

log = logging.getLogger(__name__)

FAMILIES = ("yolov8", "yolo11")
SIZES = ("n", "s", "m", "l", "x")
_RESULTS_COLUMNS = {
    "epoch": "epoch",
    "time": "time_s",
    "train/box_loss": "train_box_loss",
    "train/cls_loss": "train_cls_loss",
    "train/dfl_loss": "train_dfl_loss",
    "metrics/precision(B)": "precision",
    "metrics/recall(B)": "recall",
    "metrics/mAP50(B)": "mAP50",
    "metrics/mAP50-95(B)": "mAP50-95",
    "val/box_loss": "val_box_loss",
    "val/cls_loss": "val_cls_loss",
    "val/dfl_loss": "val_dfl_loss",
}
EpochCallback = Callable[[int, int], None]


def architecture_yaml(family: str, size: str) -> str:
    """``yolov8n.yaml`` / ``yolo11s.yaml``: ultralytics' bundled architecture files."""
    if family not in FAMILIES or size not in SIZES:
        raise ConfigError(
            f"YOLO model must be one of {FAMILIES} with size in {SIZES}, got {family!r} {size!r}"
        )
    return f"{family}{size}.yaml"


def amp_setting(amp: str, device: str) -> bool | str:
    """Ultralytics' ``amp`` argument for detect's ``auto|bf16|fp16|off`` (module doc)."""
    if device == "cpu" or amp == "off":
        return False
    if amp == "bf16":
        return "bf16"
    if amp == "fp16":
        return True
    if torch.cuda.is_bf16_supported():
        return "bf16"
    from ultralytics import settings

    return (Path(str(settings.get("weights_dir", ""))) / "yolo26n.pt").is_file()


@dataclass(frozen=True)
class YoloTrainSpec:
    """Everything ultralytics needs for one run (validated upstream by TrainConfig)."""

    family: str
    size: str
    data_yaml: Path
    run_dir: Path
    epochs: int
    imgsz: int
    batch: int
    device: str  # ultralytics form: cpu, 0, 0,1
    seed: int
    workers: int
    weights: Path | None
    cls_pw: float
    amp: str

    def train_args(self) -> dict[str, Any]:
        """The keyword arguments of ``YOLO.train`` (all public, documented options)."""
        args: dict[str, Any] = {
            "data": str(self.data_yaml),
            "epochs": self.epochs,
            "imgsz": self.imgsz,
            "batch": self.batch,
            "device": self.device,
            "seed": self.seed,
            "deterministic": True,
            "workers": self.workers,
            "project": str(self.run_dir.parent.resolve()),
            "name": self.run_dir.name,
            "exist_ok": True,
            "plots": False,
            "amp": amp_setting(self.amp, self.device),
            "cls_pw": self.cls_pw,
            "val": True,
            "verbose": True,
        }
        if self.weights is None:
            args["pretrained"] = False  # built from the YAML: nothing to load or fetch
        return args


def _epoch_hook(on_epoch: EpochCallback | None) -> Callable[[Any], None]:
    def hook(trainer: Any) -> None:
        epoch, epochs = int(trainer.epoch) + 1, int(trainer.epochs)
        # ultralytics' final validation of best.pt runs this callback again as epochs + 1
        if on_epoch is not None and epoch <= epochs:
            on_epoch(epoch, epochs)

    return hook


def _load_weights_into(model: Any, weights: Path) -> None:
    try:
        model.load(str(weights))
    except Exception as exc:  # ultralytics raises many types for a bad file
        raise ConfigError(
            f"--weights {weights} is not a loadable YOLO checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); pass a .pt written by "
            f"ultralytics or detect train"
        ) from None


def new_model(family: str, size: str, weights: Path | None) -> Any:
    """A YOLO built from its architecture YAML, with ``weights`` loaded where they fit.

    Raises:
        ConfigError: the weights file cannot be loaded.
    """
    prepare_ultralytics()
    from ultralytics import YOLO

    model = YOLO(architecture_yaml(family, size))
    if weights is not None:
        _load_weights_into(model, weights)
    return model


def resumable_model(run_dir: Path) -> Any:
    """The YOLO of an interrupted run (``run_dir/weights/last.pt`` with optimizer state).

    Raises:
        ConfigError: last.pt is missing, or it is not resumable (the run finished).
    """
    prepare_ultralytics()
    from ultralytics import YOLO

    last = run_dir / "weights" / "last.pt"
    if not last.is_file():
        raise ConfigError(f"nothing to resume in {run_dir}: no weights/last.pt; start a new run")
    model = YOLO(str(last))
    ckpt = model.ckpt or {}
    if int(ckpt.get("epoch", -1)) < 0 or ckpt.get("optimizer") is None:
        raise ConfigError(
            f"{run_dir} finished training; nothing to resume (fine-tune it with "
            f"--weights {last.parent / 'best.pt'} in a new run)"
        )
    return model


def train_yolo(model: Any, spec: YoloTrainSpec, on_epoch: EpochCallback | None = None) -> None:
    """Train ``model`` (from :func:`new_model`) into ``spec.run_dir``."""
    model.add_callback("on_fit_epoch_end", _epoch_hook(on_epoch))
    model.train(**spec.train_args())


def resume_yolo(
    model: Any, run_dir: Path, data_yaml: Path, device: str, workers: int,
    on_epoch: EpochCallback | None = None,
) -> None:
    """Continue ``model`` (from :func:`resumable_model`) with ultralytics' resume."""
    model.add_callback("on_fit_epoch_end", _epoch_hook(on_epoch))
    model.train(resume=True, data=str(data_yaml), device=device, workers=workers,
                save_dir=str(run_dir.resolve()), plots=False)


def read_results(run_dir: Path) -> list[dict[str, Any]]:
    """ultralytics' ``results.csv`` as rows of :data:`detect.runs.METRIC_COLUMNS`."""
    path = run_dir / "results.csv"
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as handle:
        for raw in csv.DictReader(handle):
            row: dict[str, Any] = {}
            for source, target in _RESULTS_COLUMNS.items():
                value = (raw.get(source) or "").strip()
                if value:
                    row[target] = int(float(value)) if target == "epoch" else float(value)
            rows.append(row)
    return rows


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



def export_yolo(weights: Path, fmt: str, *, imgsz: int, work_dir: Path, opset: int) -> Path:
    """Export ``weights`` with ultralytics' public ``YOLO(...).export`` on the CPU: ONNX with
    dynamic batch and size, simplified (onnxslim), at ``opset``; TorchScript traced at
    ``imgsz``. ultralytics writes beside the weights it is given, so a copy in ``work_dir``
    is exported (nothing lands in the run folder). Returns the exported file.

    Raises:
        RunFolderError: ultralytics could not export the checkpoint.
    """
    prepare_ultralytics()  # YOLO_AUTOINSTALL=false: its requirement check never pip-installs
    from ultralytics import YOLO

    args: dict[str, Any] = {"format": fmt, "imgsz": imgsz, "device": "cpu", "batch": 1}
    if fmt == "onnx":
        args.update(dynamic=True, simplify=True, opset=opset)
    copy = work_dir / "model.pt"
    shutil.copyfile(weights, copy)
    try:
        exported = YOLO(str(copy), task="detect").export(**args)
    except Exception as exc:  # ultralytics raises many types for a file it cannot export
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RunFolderError(
            f"ultralytics could not export {weights} to {fmt} ({type(exc).__name__}: "
            f"{first[:200]}); pass the weights of a detect YOLO run"
        ) from None
    return Path(str(exported))
