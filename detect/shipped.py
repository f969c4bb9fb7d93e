"""Where the repository's shipped files are: the real CT sample and the real model.

They live in the source tree, not in the package (``datasets/lung-pet-ct-dx/sample/`` and
``weights/real-yolov8n/`` beside ``detect/``), so they are found from a clone or an
editable install (``pip install -e .``, which ``make demo`` does). A wheel installed
elsewhere has neither: the caller then gets a ``ShippedFileMissing`` that says where it
looked and how to pass the folders explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detect.errors import DetectError

SAMPLE_PARTS = ("datasets", "lung-pet-ct-dx", "sample")
REAL_WEIGHTS_PARTS = ("weights", "real-yolov8n")
PHANTOM_WEIGHTS_PARTS = ("weights", "demo-yolov8n-phantom")
#: ``detect train --weights NAME``: the shipped run folders a name stands for.
SHIPPED_CHECKPOINTS = {"phantom": PHANTOM_WEIGHTS_PARTS, "real": REAL_WEIGHTS_PARTS}
#: The sample's DICOM root and annotation root, inside the sample folder.
SAMPLE_DICOM = "Lung-PET-CT-Dx"
SAMPLE_ANNOTATION = "Annotation"


class ShippedFileMissing(DetectError):
    """A file the repository ships is not where a clone keeps it."""


@dataclass(frozen=True)
class RealSample:
    """The real CT sample: its folder, DICOM root and annotation root."""

    root: Path

    @property
    def dicom_root(self) -> Path:
        return self.root / SAMPLE_DICOM

    @property
    def annotation_root(self) -> Path:
        return self.root / SAMPLE_ANNOTATION


def source_tree() -> Path:
    """The folder that holds the ``detect`` package (a clone's root when installed
    editable or run from the clone)."""
    return Path(__file__).resolve().parent.parent


def real_sample(explicit: Path | None = None) -> RealSample:
    """The real sample folder: ``explicit`` if given, else the source tree's.

    Raises:
        ShippedFileMissing: the folder or its DICOM/annotation roots are missing.
    """
    root = explicit if explicit is not None else source_tree().joinpath(*SAMPLE_PARTS)
    sample = RealSample(root)
    if not sample.dicom_root.is_dir() or not sample.annotation_root.is_dir():
        raise ShippedFileMissing(
            f"real CT sample not found: expected {sample.dicom_root} and "
            f"{sample.annotation_root} (a clone of the repository has them in "
            f"{'/'.join(SAMPLE_PARTS)}); run from a clone, pass --real-sample DIR, or "
            f"--no-real to skip the real-CT stage"
        )
    return sample


def real_weights(explicit: Path | None = None) -> Path:
    """The shipped real model's run folder: ``explicit`` if given, else the source tree's.

    Raises:
        ShippedFileMissing: no model.json and weights/best.pt there.
    """
    root = explicit if explicit is not None else source_tree().joinpath(*REAL_WEIGHTS_PARTS)
    if not (root / "model.json").is_file() or not (root / "weights" / "best.pt").is_file():
        raise ShippedFileMissing(
            f"real model not found: expected {root}/model.json and weights/best.pt (a clone "
            f"of the repository has them in {'/'.join(REAL_WEIGHTS_PARTS)}); run from a "
            f"clone, pass --real-weights DIR, or --no-real to skip the real-CT stage"
        )
    return root


def shipped_checkpoint(name: str) -> Path | None:
    """The run folder a shipped checkpoint's name stands for (``phantom``:
    ``weights/demo-yolov8n-phantom``, ``real``: ``weights/real-yolov8n``), or None when
    ``name`` is not one.

    Raises:
        ShippedFileMissing: a known name whose files are not in the source tree.
    """
    parts = SHIPPED_CHECKPOINTS.get(name)
    if parts is None:
        return None
    root = source_tree().joinpath(*parts)
    if not (root / "model.json").is_file() or not (root / "weights" / "best.pt").is_file():
        raise ShippedFileMissing(
            f"--weights {name} names the shipped checkpoint {'/'.join(parts)}, not found at "
            f"{root} (a clone of the repository has it); run from a clone, or pass the "
            f"path of a .pt file"
        )
    return root
