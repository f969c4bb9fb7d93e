"""Load the detector of a run folder or an exported file: one lookup of model.json's family
(:func:`detect.models.registry.family_of`), whose object loads its checkpoint or runs its
exported file (by the file's suffix). The interface itself is
:class:`detect.models.base.Detector`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from detect.models.base import Detector
from detect.models.registry import family_of
from detect.models.runtime.record import EXPORT_SUFFIXES, export_record
from detect.runs import ModelInfo
from detect.torch_check import require_working_torch

if TYPE_CHECKING:
    from detect.models.histology.network import HistologyHead


def load_detector(info: ModelInfo, weights: Path, device: str = "auto") -> Detector:
    """The detector of a run (model.json ``family``), on ``device``; an exported
    ``.onnx`` / ``.torchscript`` file (by suffix) runs through its family's runtime, after
    model.json's ``export`` section was checked against the file. An ``.onnx`` file needs
    neither torch nor ultralytics.

    Raises:
        TrainingStackMissing: a checkpoint (or TorchScript) without torch installed.
        EnvironmentProblem: torch and torchvision do not work together.
        RunFolderError: an unknown family, weights that are not loadable or do not fit
            model.json, an exported file model.json does not describe, or a run that is
            not a detector (the histology head).
    """
    family = family_of(info)
    fmt = EXPORT_SUFFIXES.get(weights.suffix)
    if fmt is not None:
        return family.open_exported(fmt, info, weights, export_record(info, weights), device)
    require_working_torch(f"a {family.name} checkpoint ({weights.name}; an exported .onnx "
                          f"runs without them)")
    return family.load_detector(info, weights, device)


def load_head(info: ModelInfo, weights: Path, device: str = "auto") -> HistologyHead:
    """The histology head of a run (``--histology``).

    Raises:
        RunFolderError: not a histology head, or its weights do not fit model.json.
    """
    require_working_torch("the histology head")
    return family_of(info).load_head(info, weights, device)
