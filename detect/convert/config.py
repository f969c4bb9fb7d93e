"""Options of ``detect convert`` (:class:`ConvertConfig`), frozen and validated on
construction: a bad option fails with ``ConfigError`` (expected vs. given) before any work
starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from detect.convert.augment import HuJitter
from detect.dataset import DEFAULT_SPLIT
from detect.device import default_workers
from detect.errors import ConfigError
from detect.histology import LETTERS, short_patient_id
from detect.io.dicom_limits import DEFAULT_MAX_PIXELS, check_max_pixels
from detect.recipe import DEFAULT_RECIPE, ChannelRecipe

CLASS_MODES = ("histology", "tumor")
FUSED_MODES = ("exclude", "include")
NEGATIVE_SOURCES = ("series", "lungs")
NEGATIVE_SOURCES = ("series", "lungs")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based index): a deterministic 1/count of patients."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard must be I/N with 0 <= I < N, got {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/8"`` → Shard(2, 8).

        Raises:
            ConfigError: not of the form I/N.
        """
        try:
            index_text, count_text = text.split("/")
            return cls(int(index_text), int(count_text))
        except ValueError:
            raise ConfigError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"0.7,0.15,0.15"`` → (0.7, 0.15, 0.15).

    Raises:
        ConfigError: not three non-negative numbers summing to 1 with a positive train part.
    """
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise ConfigError(f"--split takes three numbers like 0.7,0.15,0.15, got {text!r}") from None
    if len(parts) != 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1.0) > 1e-6:
        raise ConfigError(f"--split takes train,val,test fractions >= 0 summing to 1, got {text!r}")
    if parts[0] <= 0:
        raise ConfigError(f"--split needs a positive train fraction, got {text!r}")
    return (parts[0], parts[1], parts[2])


def parse_patients(text: str, option: str) -> tuple[str, ...]:
    """``"A0002,Lung_Dx-B0021"`` → ``("A0002", "B0021")``: patient IDs as dataset.json
    writes them (the header's ``Lung_Dx-`` form is accepted), in order, each once.

    Raises:
        ConfigError: the list names no patient.
    """
    ids = [short_patient_id(part) for part in text.split(",") if part.strip()]
    if not ids:
        raise ConfigError(f"{option} takes patient IDs like A0002,B0021, got {text!r}")
    return tuple(dict.fromkeys(ids))


@dataclass(frozen=True)
class ConvertConfig:
    """Options of ``detect convert`` (see its --help)."""

    dicom_root: Path
    annotation_root: Path
    out: Path
    recipe: ChannelRecipe = DEFAULT_RECIPE
    class_mode: str = "histology"
    split: tuple[float, float, float] = DEFAULT_SPLIT
    seed: int = 0
    negatives: int = 0
    #: Where negatives come from: ``series`` (any slice away from the boxes) or ``lungs``
    #: (slices that show the lungs; detect.convert.negatives).
    negatives_from: str = "series"
    fused: str = "exclude"
    workers: int = field(default_factory=default_workers)
    shard: Shard | None = None
    #: Largest image decoded, in pixel samples (rows x columns x samples x frames); see
    #: detect.io.dicom_limits for why 4096 x 4096 x 3.
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: Replace a finished dataset in OUT that this run would change (other options or
    #: inputs; detect.convert.replace). Only files convert wrote are ever deleted.
    overwrite: bool = False
    #: HU-jittered copies of the training images (detect.convert.augment; copies 0: off).
    hu_jitter: HuJitter = field(default_factory=HuJitter)
    #: Patients placed in val / test by name (dataset.json's short IDs, e.g. A0002).
    val_patients: tuple[str, ...] = ()
    test_patients: tuple[str, ...] = ()
    #: Write ``folds`` datasets OUT/fold-1..K, each testing one group of patients.
    folds: int | None = None

    def __post_init__(self) -> None:
        if not self.dicom_root.is_dir():
            raise ConfigError(f"DICOM root is not a folder: {self.dicom_root}")
        if not self.annotation_root.is_dir():
            raise ConfigError(f"annotation root is not a folder: {self.annotation_root}")
        if self.class_mode == "tumour":  # the spelling of the docs' prose
            object.__setattr__(self, "class_mode", "tumor")
        if self.class_mode not in CLASS_MODES:
            raise ConfigError(f"--classes must be one of {', '.join(CLASS_MODES)}, got "
                              f"{self.class_mode!r}")
        if self.fused not in FUSED_MODES:
            raise ConfigError(f"--fused must be one of {FUSED_MODES}, got {self.fused!r}")
        if self.negatives < 0:
            raise ConfigError(f"--negatives must be >= 0, got {self.negatives}")
        if self.negatives_from not in NEGATIVE_SOURCES:
            raise ConfigError(f"--negatives-from must be one of {', '.join(NEGATIVE_SOURCES)}, "
                              f"got {self.negatives_from!r}")
        if self.negatives_from not in NEGATIVE_SOURCES:
            raise ConfigError(f"--negatives-from must be one of {NEGATIVE_SOURCES}, got "
                              f"{self.negatives_from!r}")
        if self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")
        check_max_pixels(self.max_pixels)
        both = sorted(set(self.val_patients) & set(self.test_patients))
        if both:
            raise ConfigError(f"--val-patients and --test-patients both name {', '.join(both)}; "
                              f"a patient is in one split only")
        if self.folds is not None:
            if self.folds < 2:
                raise ConfigError(f"--folds must be >= 2 (one test group per fold), got "
                                  f"{self.folds}")
            if self.test_patients:
                raise ConfigError("--folds chooses the test patients of every fold; drop "
                                  "--test-patients (--val-patients stay val in every fold)")
        out = self.out.resolve()
        for root in (self.dicom_root.resolve(), self.annotation_root.resolve()):
            if out == root or root in out.parents:
                raise ConfigError(f"output folder {out} must not be inside the input {root}")

    @property
    def classes(self) -> tuple[str, ...]:
        return LETTERS if self.class_mode == "histology" else ("tumor",)
