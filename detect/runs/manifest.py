"""Contract 3: model.json, shared by every model family (validated on every read and write).

::

    runs/<family>/<name>/weights/best.pt, last.pt
    runs/<family>/<name>/model.json    family, size, classes, channel recipe, imgsz,
                                       thresholds, dataset fingerprint, best metrics, versions
    runs/<family>/<name>/metrics.csv   one row per epoch (METRIC_COLUMNS)

``model.json`` is written when training starts (``"status": "training"``, metrics null)
and rewritten when it ends (``"status": "complete"``), so an interrupted run can be
resumed and is still recognisable. ``predict`` and ``eval`` take their preprocessing
from it, never from the command line.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detect import __version__
from detect.errors import ConfigError, RunFolderError
from detect.io.atomic import write_json
from detect.lesions import LinkRule
from detect.lung import LungFieldRule
from detect.predictions import DEFAULT_CONF
from detect.recipe import ChannelRecipe
from detect.runs.board import tensorboard_available
from detect.runs.fields import check_fields, parse_model_json
from detect.runs.provenance import provenance

if TYPE_CHECKING:
    from detect.dataset import DatasetInfo

MODEL_FORMAT = "detect-model"
MODEL_VERSION = 1
MODEL_JSON = "model.json"


@dataclass(frozen=True)
class ModelInfo:
    """A validated model.json and the run folder it sits in."""

    root: Path
    manifest: dict[str, Any]

    @property
    def family(self) -> str:
        return str(self.manifest["family"])

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.manifest["classes"])

    @property
    def class_mode(self) -> str:
        return str(self.manifest["class_mode"])

    @property
    def recipe(self) -> ChannelRecipe:
        return ChannelRecipe.from_dict(self.manifest["recipe"])

    @property
    def imgsz(self) -> int:
        return int(self.manifest["imgsz"])

    @property
    def conf(self) -> float:
        return float(self.manifest["thresholds"].get("conf", DEFAULT_CONF))

    @property
    def iou(self) -> float:
        return float(self.manifest["thresholds"].get("iou", 0.7))

    @property
    def lung_field(self) -> LungFieldRule | None:
        """The lung field predict applies for this model (model.json ``postprocess``);
        None for a model trained without one (off)."""
        post = self.manifest.get("postprocess") or {}
        rule = post.get("lung_field")
        return None if rule is None else LungFieldRule.from_dict(rule)

    @property
    def link_rule(self) -> LinkRule:
        """How predict links this model's boxes into lesions (the default rule when
        model.json records none)."""
        post = self.manifest.get("postprocess") or {}
        return LinkRule.from_dict(post["lesions"]) if "lesions" in post else LinkRule()

    @property
    def status(self) -> str:
        return str(self.manifest.get("status", "complete"))

    def weights_path(self, which: str = "best") -> Path:
        """Absolute path of ``weights[which]`` (relative paths only, inside the run)."""
        return self.root / str(self.manifest["weights"][which])


def validate_model_json(data: Any, where: Path) -> None:
    """Check that ``data`` is a model.json this version of detect can use: format, version,
    then every field detect reads (:func:`detect.runs.fields.check_fields`).

    Raises:
        RunFolderError: wrong format or version, or a field that is missing, of the wrong
            type or out of range (one line: the field, what it must be, what was found).
    """
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise RunFolderError(
            f"{where}: expected format {MODEL_FORMAT!r}, found {found!r}; pass a run folder "
            f"written by detect train"
        )
    if data.get("version") != MODEL_VERSION:
        raise RunFolderError(
            f"{where}: model.json version {data.get('version')!r} is not supported (expected "
            f"{MODEL_VERSION}); retrain with this detect or install the detect that wrote it"
        )
    check_fields(data, where)
    try:
        ChannelRecipe.from_dict(data["recipe"])
    except ConfigError as exc:
        raise RunFolderError(f"{where}: the recipe does not fit: {exc}") from None


def read_model_json(path: Path) -> ModelInfo:
    """Read and validate ``path`` (a model.json, or a run folder holding one).

    Raises:
        RunFolderError: missing, unreadable, larger than 1 MB, nested deeper than 12 levels,
            holding NaN/Infinity, or invalid (see :func:`validate_model_json`).
    """
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_JSON
    if not path.is_file():
        raise RunFolderError(
            f"no model.json at {path}; pass a run folder written by detect train"
        )
    data = parse_model_json(path)
    validate_model_json(data, path)
    return ModelInfo(root=path.parent, manifest=data)


def check_fits_dataset(info: ModelInfo, classes: Sequence[str], recipe: ChannelRecipe) -> None:
    """A model may only score a dataset prepared as it was trained.

    Raises:
        RunFolderError: the classes or the channel recipe differ.
    """
    if tuple(classes) != info.classes:
        raise RunFolderError(
            f"{info.root}: the model's classes {list(info.classes)} do not fit the dataset's "
            f"{list(classes)}; use a model trained on a dataset with the same --classes"
        )
    if recipe.to_dict() != info.recipe.to_dict():
        raise RunFolderError(
            f"{info.root}: the model's channel recipe {info.recipe.to_dict()['windows']} does "
            f"not match the dataset's {recipe.to_dict()['windows']}; convert with the "
            f"model's --channels"
        )


def software_versions() -> dict[str, str]:
    """Versions that decide what a model computes (torch, torchvision, ultralytics...)."""
    import importlib.metadata

    versions = {"detect": __version__, "python": platform.python_version()}
    for package in ("torch", "torchvision", "ultralytics"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def now_iso() -> str:
    """Current UTC time, ISO 8601, seconds."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def config_args(config: Any) -> dict[str, Any]:
    """A training config dataclass as model.json ``args``: JSON values, paths as strings."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}


def new_manifest(
    family: str,
    dataset: DatasetInfo,
    *,
    imgsz: int,
    thresholds: Mapping[str, float],
    args: Mapping[str, Any],
    size: str | None = None,
    backbone: str | None = None,
    classes: Sequence[str] | None = None,
    class_mode: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """model.json at the start of training (``status`` training, metrics null), for every
    family. ``classes`` and ``class_mode`` default to the dataset's (the histology head
    predicts letters whatever the detector dataset's mode, and then the dataset's own mode
    is kept under ``dataset``); ``extra`` adds family keys. ``provenance`` (git commit,
    hardware, the initial weights ``args.weights`` and their SHA-256):
    :mod:`detect.runs.provenance`."""
    weights = args.get("weights")
    source = {
        "path": str(dataset.root.resolve()),
        "fingerprint": dataset.fingerprint,
        "splits": dataset.splits,
    }
    if class_mode is not None:
        source["class_mode"] = dataset.class_mode
    return {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "status": "training",
        "family": family,
        "size": size,
        "backbone": backbone,
        "classes": list(dataset.classes if classes is None else classes),
        "class_mode": dataset.class_mode if class_mode is None else class_mode,
        "recipe": dataset.manifest["recipe"],
        "imgsz": imgsz,
        "thresholds": dict(thresholds),
        "dataset": source,
        "metrics": None,
        "versions": software_versions(),
        "provenance": provenance(Path(weights) if weights else None,
                                 tensorboard=tensorboard_available()),
        "weights": {"best": "weights/best.pt", "last": "weights/last.pt"},
        "args": dict(args),
        "created": now_iso(),
        **(extra or {}),
    }


def write_model_json(run_dir: Path, data: Mapping[str, Any]) -> Path:
    """Validate and write ``run_dir/model.json``.

    Raises:
        RunFolderError: ``data`` is not a valid model.json (a bug in the caller).
    """
    path = run_dir / MODEL_JSON
    validate_model_json(dict(data), path)
    write_json(path, data)
    return path
