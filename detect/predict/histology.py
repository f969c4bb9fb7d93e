"""The histology head at prediction time (``detect predict --histology H``, ``detect eval
--weights W --histology H``): A/B/E/G probabilities for every detection of any detector.

Each detection's box is cropped with the head's own crop rule (model.json ``crop``,
``imgsz``) from the slice rendered with the head's own channel recipe: the very image the
detector saw when the two recipes are equal, else the slice rendered again from its
DICOM with the head's recipe (predict) — on a converted split, whose PNGs carry one
recipe, a head with another recipe is refused. The probabilities replace the record's
``histology`` (contract 4); ``label`` stays the detector's (a letter or ``tumor``).

A patient's (or series') head call is the argmax of the mean of its detections'
probability vectors (the detections ``predict`` kept, i.e. score >= ``--conf``), with
that mean's probability; ``none`` when it has no detection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detect.errors import RunFolderError
from detect.histology import LETTERS
from detect.models.detector import load_head as load_run_head
from detect.predict.sources import Rendered, Series, SliceJob, render_job, slice_jobs
from detect.predictions import Prediction
from detect.recipe import ChannelRecipe
from detect.runs import resolve_weights

if TYPE_CHECKING:
    from detect.models.histology.network import HistologyHead

NO_CALL = "none"


def load_head(path: Path, device: str = "auto") -> HistologyHead:
    """The head of ``--histology PATH`` (a run folder, its model.json or a .pt in it).

    Raises:
        RunFolderError: not a detect run, or a run of another family (a detector).
    """
    info, weights = resolve_weights(path)
    return load_run_head(info, weights, device)


def with_head(
    predictions: Sequence[Prediction], image: np.ndarray, head: HistologyHead
) -> list[Prediction]:
    """``predictions`` of one slice with ``histology`` = the head's probabilities of their
    boxes on ``image`` (the slice in the head's recipe)."""
    if not predictions:
        return []
    boxes = np.array([p.xyxy for p in predictions], dtype=np.float64)
    probabilities = head.probabilities(image, boxes)
    return [
        replace(p, histology={letter: float(v) for letter, v in zip(LETTERS, row)})
        for p, row in zip(predictions, probabilities)
    ]


class HeadOnSlices:
    """Attaches the head's probabilities to the detections of DICOM slices, re-rendering a
    slice with the head's recipe when the detector's differs (module docstring)."""

    def __init__(self, head: HistologyHead, detector_recipe: ChannelRecipe) -> None:
        self.head = head
        self.recipe = ChannelRecipe.from_dict(head.recipe_dict)
        self.same = self.recipe.to_dict() == detector_recipe.to_dict()
        self._jobs: dict[str, list[SliceJob]] = {}
        self.rendered_again = 0

    def image(self, series: Series, rendered: Rendered) -> np.ndarray | None:
        """The slice in the head's recipe (None: its pixels cannot be decoded)."""
        if self.same:
            return rendered.image
        if series.uid not in self._jobs:
            self._jobs = {series.uid: slice_jobs(series, self.recipe, lung=False)}
        self.rendered_again += 1
        return render_job(self._jobs[series.uid][rendered.index]).image

    def attach(
        self, series: Series, rendered: Rendered, predictions: Sequence[Prediction]
    ) -> list[Prediction]:
        """``predictions`` of one slice with the head's probabilities."""
        if not predictions:
            return []
        image = self.image(series, rendered)
        if image is None:
            raise RunFolderError(
                f"series {series.uid}: slice {rendered.index} could not be rendered with the "
                f"histology head's recipe; predict without --histology"
            )
        return with_head(predictions, image, self.head)


def check_head_fits(head: HistologyHead, recipe: ChannelRecipe) -> None:
    """On a converted split the head must use the dataset's recipe (the PNGs carry one).

    Raises:
        RunFolderError: the recipes differ.
    """
    if head.recipe_dict != recipe.to_dict():
        raise RunFolderError(
            f"{head.info.root}: the histology head's channel recipe "
            f"{head.recipe_dict['windows']} is not the dataset's {recipe.to_dict()['windows']}; "
            f"use a head trained on a dataset converted with the same --channels, or run "
            f"detect predict on the DICOM (it renders each slice for the head)"
        )


def head_call(predictions: Sequence[Prediction]) -> tuple[str, float | None]:
    """(letter, its mean probability) over the detections' head vectors; ("none", None)
    when there is none."""
    vectors = [
        [float((p.histology or {}).get(letter, 0.0)) for letter in LETTERS]
        for p in predictions if p.histology
    ]
    if not vectors:
        return NO_CALL, None
    mean = np.mean(np.array(vectors), axis=0)
    top = int(np.argmax(mean))
    return LETTERS[top], float(mean[top])
