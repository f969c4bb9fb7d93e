"""Looking model families up (torch-free): by ``--model``, by a run's model.json, by an
option; and :class:`TrainConfig`, the options of ``detect train``, which resolve into the
family's own config. The families themselves are in :mod:`detect.models.families`, one
module each."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detect.errors import ConfigError, RunFolderError
from detect.models.families import FAMILIES
from detect.models.family import DETECTOR, FAMILY_OPTIONS, Family, flag
from detect.models.training import RunOptions
from detect.shipped import shipped_checkpoint

if TYPE_CHECKING:
    from detect.runs import ModelInfo

_BY_NAME = {family.name: family for family in FAMILIES}


def family_names(role: str | None = None) -> tuple[str, ...]:
    """The families' names in listing order, all or those of ``role``."""
    return tuple(f.name for f in FAMILIES if role is None or f.role == role)


def get_family(name: str) -> Family:
    """The family ``--model NAME`` names.

    Raises:
        ConfigError: no family of that name.
    """
    family = _BY_NAME.get(name)
    if family is None:
        raise ConfigError(f"--model must be one of {', '.join(family_names())}, got {name!r}")
    return family


def family_of(info: ModelInfo) -> Family:
    """The family of a run (model.json ``family``), after checking the model.json fields
    only that family writes.

    Raises:
        RunFolderError: an unknown family, or a family field that is missing or invalid.
    """
    where = info.root / "model.json"
    family = _BY_NAME.get(info.family)
    if family is None:
        raise RunFolderError(
            f"{where}: family must be one of {', '.join(family_names())}, found "
            f"{info.family[:60]!r}; this detect cannot use that run"
        )
    family.check_manifest(info.manifest, Path(where))
    return family


def families_taking(option: str) -> tuple[str, ...]:
    """The families ``detect train`` option ``option`` applies to."""
    return tuple(f.name for f in FAMILIES if option in f.options)


#: ``--class-weighting auto``: the family's default.
AUTO = "auto"


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Options of ``detect train`` (see its --help), checked on construction (torch-free).

    ``None`` = the family's default: each family's config dataclass holds its defaults, and
    an option that does not apply to the family (``--mosaic`` with fasterrcnn) is refused.
    """

    model: str
    data: Path
    epochs: int | None = None
    batch: int | None = None
    device: str = "auto"
    weights: Path | None = None
    project: Path = Path("runs")
    name: str | None = None
    resume: bool = False
    seed: int = 0
    workers: int | None = None
    imgsz: int | None = None
    size: str | None = None
    class_weighting: str | None = None
    amp: str | None = None
    backbone: str | None = None
    nbs: int | None = None
    optimizer: str | None = None
    lr0: float | None = None
    mosaic: float | None = None
    #: How a detector's operating threshold is chosen on its validation split (None: the
    #: default target, :mod:`detect.eval.operating`); the histology head has none.
    operating_point: str | None = None

    def __post_init__(self) -> None:
        if self.class_weighting == AUTO:  # the CLI's spelling of "the family's default"
            object.__setattr__(self, "class_weighting", None)
        self._shipped_weights()
        self.resolve()  # every check now, before any work

    def _shipped_weights(self) -> None:
        """``--weights phantom`` / ``real``: the shipped checkpoint of that name (an
        existing path of that name wins), which must fit ``--model`` (and ``--size``; an
        unset size becomes the checkpoint's).

        Raises:
            ConfigError: the checkpoint is of another family or size.
            ShippedFileMissing: its files are not in the source tree.
        """
        if self.weights is None or self.weights.exists():
            return
        root = shipped_checkpoint(str(self.weights))
        if root is None:
            return
        from detect.runs import read_model_json

        info = read_model_json(root)
        size = info.manifest.get("size")
        made = f"{info.family}{size or ''}"
        if info.family != self.model or (self.size is not None and self.size != size):
            wanted = f"--model {info.family}" + (f" --size {size}" if size else "")
            raise ConfigError(f"--weights {self.weights} is the shipped {made} checkpoint "
                              f"({root}); it fits {wanted}, not --model {self.model}"
                              + (f" --size {self.size}" if self.size else ""))
        object.__setattr__(self, "weights", root / "weights" / "best.pt")
        if self.size is None and size is not None:
            object.__setattr__(self, "size", str(size))

    def given(self) -> dict[str, Any]:
        """The family's options that were set (not None)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)
                  if f.name not in ("model", "operating_point")}
        return {k: v for k, v in values.items() if v is not None}

    def resolve(self) -> tuple[Family, RunOptions]:
        """The family ``model`` names and its config for these options.

        Raises:
            ConfigError: an unknown family, an option that does not apply to it (one line
                naming the families it applies to), or a bad value.
        """
        family = get_family(self.model)
        given = self.given()
        for option in FAMILY_OPTIONS:
            if option in given and option not in family.options:
                takers = ", ".join(families_taking(option)) or "no family"
                raise ConfigError(f"{flag(option)} is for --model {takers}, not {family.name}")
        return family, family.config(given)


def family_for(config: RunOptions) -> Family:
    """The family a family config belongs to (a YOLO config names its family).

    Raises:
        ConfigError: no family takes this kind of config.
    """
    for family in FAMILIES:
        if type(config) is family.config_type and getattr(config, "family", family.name) \
                == family.name:
            return family
    raise ConfigError(f"no model family takes a {type(config).__name__}")


def defaults_text(option: str) -> str:
    """``--help`` text of a per-family default: ``100; fasterrcnn 50, histology 30`` (the
    value most families share, then the others), or each family's when none is shared."""
    shown = {f.name: f.default(option) for f in FAMILIES if f.default(option) is not None}
    if not shown:
        return "none"
    values = list(shown.values())
    common = max(values, key=values.count)
    if values.count(common) == len(values):
        return str(common)
    if values.count(common) == 1:
        return ", ".join(f"{name} {value}" for name, value in shown.items())
    others = ", ".join(f"{name} {value}" for name, value in shown.items() if value != common)
    return f"{common}; {others}"


def detector_names() -> tuple[str, ...]:
    """The families that find boxes (``detect predict --weights``)."""
    return family_names(DETECTOR)
