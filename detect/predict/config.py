"""Options of ``detect predict`` (:class:`PredictConfig`, checked on construction) and what
a run gives back (:class:`PredictSummary`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from detect.device import check_device_spec
from detect.errors import ConfigError
from detect.io.dicom import DEFAULT_MAX_PIXELS
from detect.io.dicom_limits import check_max_pixels
from detect.lesions import LinkRule
from detect.lung import LungFieldRule

if TYPE_CHECKING:
    from detect.predict.dicomweb import DicomwebSelection

SAVE_KINDS = ("json", "voc", "png", "sr")
LUNG_FIELD_MODES = ("model", "on", "off")
Progress = Callable[[int, int], None]


def parse_save(text: str) -> tuple[str, ...]:
    """``"json,voc"`` → ("json", "voc").

    Raises:
        ConfigError: an unknown kind.
    """
    kinds = tuple(dict.fromkeys(k.strip().lower() for k in text.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in SAVE_KINDS]
    if unknown or not kinds:
        raise ConfigError(f"--save takes a list of {', '.join(SAVE_KINDS)}, got {text!r}")
    return kinds


@dataclass(frozen=True)
class PredictConfig:
    """Options of ``detect predict`` (see its --help). ``out`` None = ./predictions[-N];
    ``conf`` None = the model's operating threshold (model.json ``thresholds.conf``).

    ``workers`` None = automatic: slices are decoded in this process when the model runs
    on the CPU (torch already uses every core there), in up to 8 worker processes when it
    runs on a GPU (decoding is then the bottleneck). ``max_pixels``: slices declaring more
    pixel samples are skipped (``image-too-large``), never decoded. ``lung_field``:
    ``model`` (the model's post-processing, model.json ``postprocess``: on for models
    trained with it), ``on`` (the default rule) or ``off``; ``lesions``: how boxes are
    linked (None: the model's rule). ``dicomweb``: read from a DICOMweb server instead of
    ``sources`` (which is then empty); its ``push`` adds ``sr`` to ``save``.
    ``overwrite``: replace a finished run's outputs in ``out`` (:mod:`detect.predict.outdir`).
    """

    sources: tuple[Path, ...]
    weights: Path
    out: Path | None = None
    conf: float | None = None
    save: tuple[str, ...] = ("json", "voc")
    device: str = "auto"
    batch: int = 16
    workers: int | None = None
    histology: Path | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    lung_field: str = "model"
    lesions: LinkRule | None = None
    dicomweb: DicomwebSelection | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.dicomweb is not None:
            if self.sources:
                raise ConfigError("detect predict reads folders or one DICOMweb URL, not both")
            if self.dicomweb.push and "sr" not in self.save:
                object.__setattr__(self, "save", (*self.save, "sr"))
        elif not self.sources:
            raise ConfigError("detect predict needs at least one SOURCE (DICOM folder or file)")
        if self.conf is not None and not 0.0 <= self.conf <= 1.0:
            raise ConfigError(f"--conf must be in [0, 1], got {self.conf}")
        for kind in self.save:
            if kind not in SAVE_KINDS:
                raise ConfigError(f"--save kinds are {', '.join(SAVE_KINDS)}, got {kind!r}")
        if self.batch < 1 or (self.workers is not None and self.workers < 1):
            raise ConfigError(f"--batch and --workers must be >= 1, got {self.batch}, "
                              f"{self.workers}")
        check_device_spec(self.device)
        check_max_pixels(self.max_pixels)
        if self.lung_field not in LUNG_FIELD_MODES:
            raise ConfigError(f"--lung-field takes {', '.join(LUNG_FIELD_MODES)}, got "
                              f"{self.lung_field!r}")

    def rules(self, model_lung_field: LungFieldRule | None, model_link: LinkRule
              ) -> tuple[LungFieldRule | None, LinkRule]:
        """The lung field (None: off) and linking rule this run applies, given the model's."""
        lung = {"model": model_lung_field, "on": LungFieldRule(), "off": None}[self.lung_field]
        return lung, self.lesions or model_link


@dataclass(frozen=True)
class PredictSummary:
    """What a prediction run read, found, skipped and wrote."""

    out: Path
    files: dict[str, Path]
    files_seen: int
    series: int
    slices: int
    slices_with_findings: int
    detections: int
    skipped: dict[str, int]
    seconds: float
    conf: float
    outside_lung: int = 0
    lesions: int = 0
    pushed: tuple[int, int] | None = None  # --push: SRs stored, SRs already on the server
