"""YOLOv8 / YOLO11 training through ultralytics' public ``YOLO(...).train``.

Nothing downloads at run time:

- Models are built from the architecture YAML (``yolov8n.yaml``) when no ``--weights`` is
  given, and ``pretrained=False``.
- AMP: ultralytics' fp16 AMP check fetches ``yolo26n.pt``. ``amp="auto"`` therefore uses
  ``bf16`` on GPUs that support it (no check), fp16 only when the check weights are already
  in ultralytics' ``weights_dir``, and fp32 otherwise; CPU training is fp32. An explicit
  ``amp="fp16"`` runs ultralytics' check as it is (a fetch attempt without those weights).
- Several GPUs (``device="0,1"``): ultralytics' own DDP subprocess; it inherits the
  offline environment (:mod:`detect.models.yolo.env`). The per-epoch callback runs only in
  single-process training, so with DDP ``metrics.csv`` is written when training ends.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402  (after the check, so a broken pair fails with one line)

from detect.errors import ConfigError  # noqa: E402
from detect.models.catalog import YOLO_FAMILIES, YOLO_SIZES  # noqa: E402
from detect.models.yolo.env import prepare_ultralytics  # noqa: E402

log = logging.getLogger(__name__)


FAMILIES = YOLO_FAMILIES
SIZES = YOLO_SIZES
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
