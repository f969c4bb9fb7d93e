"""YOLOv8 / YOLO11 training through ultralytics' public ``YOLO(...).train``.

Nothing downloads at run time:

- Models are built from the architecture YAML (``yolov8n.yaml``) when no ``--weights`` is
  given, and ``pretrained=False``.
- ``--weights`` and ``--resume`` files are read by detect's safe reader
  (:mod:`detect.models.yolo.checkpoint`, which also says what is trusted): ``--weights``
  gives only tensors, loaded into the YAML-built network where names and shapes fit;
  ``--resume`` checks ``last.pt`` (:func:`check_resumable`) before ultralytics' trainer
  reads it.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detect.torch_check import require_working_torch

require_working_torch()

import torch  # noqa: E402  (after the check, so a broken pair fails with one line)

from detect.device import default_workers  # noqa: E402
from detect.errors import ConfigError, RunFolderError  # noqa: E402
from detect.models.yolo.checkpoint import YoloCheckpoint, read_yolo_checkpoint  # noqa: E402
from detect.models.yolo.env import prepare_ultralytics, threads_kept  # noqa: E402
from detect.models.yolo.network import (  # noqa: E402
    architecture_yaml,
    build_network,
    load_matching,
    same_architecture,
)

log = logging.getLogger(__name__)


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
    nbs: int | None = None  # None: ultralytics' nominal batch (64)
    optimizer: str = "auto"
    lr0: float | None = None  # None: ultralytics' (ignored by its auto optimizer)
    mosaic: float | None = None  # None: ultralytics' 1.0
    end2end: bool = False  # train and validate the NMS-free head (YOLO26)

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
        args["optimizer"] = self.optimizer
        for name in ("nbs", "lr0", "mosaic"):
            if getattr(self, name) is not None:
                args[name] = getattr(self, name)
        if self.end2end:
            args["nms"] = False  # ultralytics: validation (best.pt) with the NMS-free head
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


def new_model(family: str, size: str, weights: Path | None) -> Any:
    """A YOLO built from its architecture YAML, with the tensors of ``weights`` loaded
    where names and shapes fit (ultralytics' public ``YOLO.load`` from a module). The file
    is read by detect's safe reader only (:mod:`detect.models.yolo.checkpoint`).

    Raises:
        ConfigError: the weights file is refused, not a YOLO detection checkpoint, or none
            of its tensors fit ``family`` ``size``.
    """
    prepare_ultralytics()
    from ultralytics import YOLO

    model = YOLO(architecture_yaml(family, size))
    if weights is not None:
        try:
            checkpoint = read_yolo_checkpoint(weights)
        except RunFolderError as exc:
            raise ConfigError(f"--weights: {exc}") from None
        donor = build_network(family, size, checkpoint.names)
        fitted = load_matching(donor, checkpoint.state)
        if fitted == 0:
            raise ConfigError(
                f"--weights {weights}: none of its {len(checkpoint.state)} tensors fit "
                f"{family}{size}; pass weights of that model (or pick its --model/--size)"
            )
        log.info("--weights: %d of %d tensors fit %s%s", fitted, len(checkpoint.state),
                 family, size)
        model.load(donor)
    return model


#: Training arguments ultralytics sets itself on resume (model, resume, data and save_dir
#: come from detect's call) or resolves from a name (optimizer "auto" -> "AdamW").
_SET_ON_RESUME = ("model", "resume", "data", "save_dir", "optimizer", "mode", "task")
#: Text arguments detect passes (YoloTrainSpec.train_args) and records in model.json.
_PASSED_BY_DETECT = ("device", "project", "name", "amp")


def check_resumable(checkpoint: YoloCheckpoint, family: str, size: str, run_dir: Path,
                    recorded: Mapping[str, Any]) -> None:
    """What ultralytics' trainer takes from ``last.pt`` on resume, checked first (see
    :mod:`detect.models.yolo.checkpoint`, "What is trusted"): it must be resumable, its
    architecture the bundled one of ``family`` ``size`` (ultralytics rebuilds the network
    from it), and its training arguments may name no file or folder detect did not pass:
    every text argument is ultralytics' default, one ultralytics sets on resume itself
    (``save_dir`` and ``data`` come from detect's call), or, for the text arguments detect
    passes, the value recorded in model.json (``recorded``: ``args.ultralytics``).

    Raises:
        ConfigError: finished, or a last.pt detect would not have written.
    """
    from ultralytics.cfg import DEFAULT_CFG_DICT

    last = checkpoint.path
    if not checkpoint.resumable:
        raise ConfigError(
            f"{run_dir} finished training; nothing to resume (fine-tune it with "
            f"--weights {last.parent / 'best.pt'} in a new run)"
        )
    if checkpoint.architecture is None or not same_architecture(
            checkpoint.architecture, family, size):
        raise ConfigError(f"refused: {last} describes another network than {family}{size}; "
                          f"it was not resumed, start a new run")
    for key, value in checkpoint.train_args.items():
        if key in _SET_ON_RESUME or not _names_a_file(value):
            continue
        passed = key in _PASSED_BY_DETECT and value == recorded.get(key)
        if value != DEFAULT_CFG_DICT.get(key) and not passed:
            raise ConfigError(f"refused: {last} sets training argument {key} to "
                              f"{str(value)[:80]!r}, which detect never does; it was not "
                              f"resumed, start a new run")


def _names_a_file(value: Any) -> bool:
    """Text (or text in a list) could name a file, a folder or a URL; numbers cannot."""
    if isinstance(value, (list, tuple)):
        return any(_names_a_file(v) for v in value)
    return isinstance(value, str)


def resumable_model(run_dir: Path, family: str, size: str,
                    recorded: Mapping[str, Any]) -> Any:
    """The YOLO that resumes ``run_dir/weights/last.pt``, after :func:`check_resumable`
    read it with detect's safe reader. The YOLO is built from the bundled YAML; ultralytics'
    trainer then reads last.pt itself (:func:`resume_yolo`).

    Raises:
        ConfigError: last.pt is missing, refused, finished, or not detect's.
    """
    prepare_ultralytics()
    from ultralytics import YOLO

    last = run_dir / "weights" / "last.pt"
    if not last.is_file():
        raise ConfigError(f"nothing to resume in {run_dir}: no weights/last.pt; start a new run")
    try:
        checkpoint = read_yolo_checkpoint(last)
    except RunFolderError as exc:
        raise ConfigError(f"--resume: {exc}") from None
    check_resumable(checkpoint, family, size, run_dir, recorded)
    return YOLO(architecture_yaml(family, size))


def _every_cpu(trainer: Any) -> None:
    """On the CPU, train with every CPU this process may use. ultralytics sets torch to
    CPUs - 1 threads (one left for dataloader workers), yet runs no workers on the CPU:
    on a 2-core machine that halved training speed (yolov8n at 256 px, batch 16: 1.38 s
    per forward + backward with 1 thread, 0.73 s with 2)."""
    if getattr(trainer.device, "type", None) == "cpu":
        torch.set_num_threads(default_workers())


def train_yolo(model: Any, spec: YoloTrainSpec, on_epoch: EpochCallback | None = None) -> None:
    """Train ``model`` (from :func:`new_model`) into ``spec.run_dir``."""
    model.add_callback("on_pretrain_routine_start", _every_cpu)
    model.add_callback("on_fit_epoch_end", _epoch_hook(on_epoch))
    with threads_kept():
        model.train(**spec.train_args())


def resume_yolo(
    model: Any, run_dir: Path, data_yaml: Path, device: str, workers: int,
    on_epoch: EpochCallback | None = None,
) -> None:
    """Continue ``run_dir/weights/last.pt`` with ultralytics' resume (``model`` from
    :func:`resumable_model`, which checked that file)."""
    model.add_callback("on_pretrain_routine_start", _every_cpu)
    model.add_callback("on_fit_epoch_end", _epoch_hook(on_epoch))
    with threads_kept():
        model.train(resume=str((run_dir / "weights" / "last.pt").resolve()),
                    data=str(data_yaml), device=device, workers=workers,
                    save_dir=str(run_dir.resolve()), plots=False)


def read_results(run_dir: Path) -> list[dict[str, Any]]:
    """ultralytics' ``results.csv`` as rows of :data:`detect.runs.METRIC_COLUMNS`.

    ``time_s`` is the seconds of that epoch (training and validation), as every family
    writes it: ultralytics' ``time`` counts from the start of training (and from 0 again
    after a resume), so each epoch's is its difference to the previous row's, or the
    value itself where the clock restarted.
    """
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
    clock = 0.0
    for row in rows:
        if "time_s" in row:
            since_start = row["time_s"]
            row["time_s"] = since_start - clock if since_start >= clock else since_start
            clock = since_start
    return rows
