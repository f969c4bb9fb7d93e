"""What a model family is, in one object (torch-free): the base class every family in
:mod:`detect.models.families` derives from.

A family owns everything that differs between models: which ``detect train`` options apply
and their defaults (the fields of its config dataclass, the one place a default is
written), its image size rule, its default thresholds, the model.json fields only it
writes, and how it trains, loads a checkpoint, runs an exported file and exports. The
command line, ``train``, ``predict``, ``eval`` and ``export`` look a family up by name
(:mod:`detect.models.registry`) and never branch on it. Engine code (torch, ultralytics)
is imported inside the methods, so the registry itself loads without torch.

As torchvision registers its model builders once (``torchvision/models/_api.py``) and
ultralytics reads one ``default.yaml`` for trainer, predictor and exporter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from detect.errors import RunFolderError
from detect.models.training import SHARED_OPTIONS, RunOptions, training_imgsz

if TYPE_CHECKING:
    from detect.models.base import Detector
    from detect.models.training import BatchProgress, EpochProgress, TrainResult, TrainServices
    from detect.runs import ModelInfo

DETECTOR = "detector"
CLASSIFIER = "classifier"
#: Every option a family may take beyond the shared ones, with its flag (for messages).
FAMILY_OPTIONS = ("imgsz", "size", "class_weighting", "amp", "backbone", "nbs", "optimizer",
                  "lr0", "mosaic")


def flag(option: str) -> str:
    """``class_weighting`` → ``--class-weighting``."""
    return "--" + option.replace("_", "-")


class Family:
    """One model family (module docstring). Subclasses set the class attributes and
    implement what their role needs."""

    #: model.json ``family`` and ``detect train --model``.
    name: str = ""
    #: One line for ``--help``.
    summary: str = ""
    #: ``detector`` (boxes on slices) or ``classifier`` (A/B/E/G of a box: the histology head).
    role: str = DETECTOR
    #: The family's config (a frozen dataclass): its field defaults are the family's defaults.
    config_type: ClassVar[type[RunOptions]] = RunOptions
    #: TrainConfig options beyond the shared ones that apply to this family.
    options: tuple[str, ...] = ()
    #: model.json ``thresholds`` of a new run: ``conf`` (operating score) and NMS ``iou``.
    thresholds: ClassVar[Mapping[str, float]] = MappingProxyType({})
    #: ``detect export --format`` values this family supports.
    export_formats: tuple[str, ...] = ()
    #: Place in listings (``--help``): detectors first, by age.
    rank: int = 100

    # -- options --------------------------------------------------------------------------

    def default(self, option: str) -> Any:
        """This family's default for ``option`` (a field of its config), or None."""
        for item in fields(self.config_type):
            if item.name == option:
                if item.default is not MISSING:
                    return item.default
                if item.default_factory is not MISSING:
                    return item.default_factory()
        return None

    def config(self, given: Mapping[str, Any]) -> RunOptions:
        """This family's config for the given ``detect train`` options (those that apply
        to it, :meth:`detect.models.registry.TrainConfig.resolve`), over its defaults.

        Raises:
            ConfigError: a bad value (the config checks itself).
        """
        mine = {k: v for k, v in given.items() if k in SHARED_OPTIONS or k in self.options}
        return self.config_type(**self.config_values(mine))

    def config_values(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments of :attr:`config_type` for the given options (a family
        whose config names an option differently maps it here)."""
        return dict(given)

    def training_imgsz(self, requested: int | None, dataset_size: int) -> int:
        """The image size a run trains at, px (detectors: :func:`training_imgsz`)."""
        return training_imgsz(requested, dataset_size)

    def check_manifest(self, data: Mapping[str, Any], where: Path) -> None:
        """Check the model.json fields only this family writes (the shared ones are checked
        by :mod:`detect.runs.fields`).

        Raises:
            RunFolderError: one line naming the field, what it must be and what was found.
        """

    # -- training ---------------------------------------------------------------------------

    def train(self, config: RunOptions, services: TrainServices,
              on_epoch: EpochProgress | None,
              on_batch: BatchProgress | None = None) -> TrainResult:
        """Train (or resume) into a run folder (contract 3); ``on_epoch`` after every
        epoch, ``on_batch`` after every training step where the family reports steps."""
        raise NotImplementedError(f"{self.name} has no trainer")

    # -- inference --------------------------------------------------------------------------

    def load_detector(self, info: ModelInfo, weights: Path, device: str) -> Detector:
        """The PyTorch detector of a run's checkpoint.

        Raises:
            RunFolderError: the weights do not fit model.json, or this is no detector.
        """
        raise RunFolderError(self._not_a_detector(info))

    def load_head(self, info: ModelInfo, weights: Path, device: str) -> Any:
        """The histology head of a run (classifiers only).

        Raises:
            RunFolderError: this family is no histology head.
        """
        raise RunFolderError(
            f"{info.root} is a {self.name} run, not a histology head; pass a run folder "
            f"written by detect train --model histology"
        )

    def _not_a_detector(self, info: ModelInfo) -> str:
        return (f"{info.root} is a {self.name} run, which does not find boxes; pass a detector "
                f"run as --weights")

    # -- export -----------------------------------------------------------------------------

    def export(self, fmt: str, info: ModelInfo, weights: Path, work_dir: Path,
               opset: int) -> Path:
        """Write ``weights`` as ``fmt`` into ``work_dir``; returns the file."""
        raise RunFolderError(f"{info.root}: a {self.name} model cannot be exported")

    def open_exported(self, fmt: str, info: ModelInfo, path: Path, record: Mapping[str, Any],
                      device: str) -> Detector:
        """The detector of an exported file, as its model.json ``export`` section
        (``record``) describes it; no check of the record here.

        Raises:
            RunFolderError: not loadable, or the format is not this family's.
        """
        raise RunFolderError(f"{path}: model family {self.name!r} has no {fmt} runtime")

    def export_packages(self, fmt: str) -> tuple[str, ...]:
        """Python packages the exporter of ``fmt`` needs (checked before exporting)."""
        return ("onnx", "onnxruntime") if fmt == "onnx" else ()

    def export_input(self, fmt: str, imgsz: int) -> dict[str, Any]:
        """What the exported graph takes and gives, for model.json's ``export.input``."""
        return {}

    def export_stride(self, reference: Detector) -> int | None:
        """The stride recorded with an export (YOLO's letterbox needs it), or None."""
        return None

    #: Most detections per image the family returns (the parity check's cap).
    max_detections: int = 300
    #: Whether parity also compares the raw head output anchor by anchor (YOLO with NMS).
    compares_raw_head: bool = False
