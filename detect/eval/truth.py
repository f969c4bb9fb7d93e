"""Ground truth of one split and the predictions assigned to it (the evaluator's inputs).

Ground truth comes from ``coco/<split>.json`` of a converted dataset (contract 2);
predictions are contract-4 records. A record is tied to its slice by
``sop_instance_uid``; a record without one falls back to its COCO ``image_id``. Records
whose slice is not in the split are excluded from every metric and counted.

Class of a record, in this order: its ``label`` matched (case-insensitively) against the
dataset's classes; when the label is not a class (e.g. ``tumor`` on a histology dataset)
the argmax of its ``histology`` probabilities; when the label is empty, its 1-based
``category_id``; otherwise it has no class (counted as ``unmapped``; it still counts in
the class-agnostic metrics: FROC, per-patient sensitivity). On a tumour-only dataset
(one class) every record is a tumour.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from detect.boxes import XYXY, coco_to_xyxy
from detect.dataset import DatasetInfo
from detect.errors import DatasetError, PredictionsError
from detect.histology import LETTERS, patient_letter, short_patient_id
from detect.predictions import Prediction, histology_argmax

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GtBox:
    """One ground-truth box: xyxy px, 0-based class index, histology letter (or None)."""

    ann_id: int
    xyxy: XYXY
    class_index: int
    letter: str | None


@dataclass(frozen=True)
class GtImage:
    """One slice of the split. ``scan`` is its series UID (the FROC "scan");
    ``slice_index`` its place in the whole series (None when the dataset does not say)."""

    image_id: int
    file_name: str
    width: int
    height: int
    patient_id: str
    scan: str
    sop_uid: str
    boxes: tuple[GtBox, ...]
    slice_index: int | None = None


@dataclass(frozen=True)
class Detection:
    """A prediction assigned to a slice of the split. ``order``: position in the input."""

    image_id: int
    xyxy: XYXY
    score: float
    class_index: int | None
    label: str
    histology: Mapping[str, float] | None
    order: int


@dataclass(frozen=True)
class SplitTruth:
    """The ground truth of one split; ``images`` keyed and ordered by COCO image id."""

    split: str
    classes: tuple[str, ...]
    class_mode: str
    images: dict[int, GtImage]
    patient_letters: dict[str, str | None]
    coco: dict[str, Any] = field(repr=False)

    @property
    def patients(self) -> list[str]:
        """Patients with at least one slice in the split, sorted."""
        return sorted(self.patient_letters)

    def patients_per_letter(self) -> dict[str, int]:
        """How many of the split's patients have each histology letter."""
        counts = {letter: 0 for letter in LETTERS}
        for letter in self.patient_letters.values():
            if letter is not None:
                counts[letter] = counts.get(letter, 0) + 1
        return counts

    def patients_per_class(self) -> dict[str, int]:
        """Patients with at least one box of each class."""
        seen: dict[str, set[str]] = {name: set() for name in self.classes}
        for image in self.images.values():
            for box in image.boxes:
                seen[self.classes[box.class_index]].add(image.patient_id)
        return {name: len(ids) for name, ids in seen.items()}


@dataclass(frozen=True)
class Assignment:
    """Predictions grouped by slice, with what could not be used."""

    by_image: dict[int, list[Detection]]
    outside_split: int
    outside_examples: tuple[str, ...]
    unmapped: int

    @property
    def in_split(self) -> int:
        return sum(len(dets) for dets in self.by_image.values())


def _letter(value: Any) -> str | None:
    text = str(value).strip().upper() if value else ""
    return text if text in LETTERS else None


def _patient_letter(dataset: DatasetInfo, patient_id: str, image: Mapping[str, Any]) -> str | None:
    entry = dataset.manifest.get("patients", {}).get(patient_id, {})
    found = _letter(entry.get("letter")) if isinstance(entry, Mapping) else None
    found = found or _letter(image.get("histology"))
    if found is None:
        try:
            found = _letter(patient_letter(patient_id))
        except ValueError:
            found = None
    return found


def _slice_index(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None


def _category_index(coco: Mapping[str, Any], classes: Sequence[str], split: str) -> dict[int, int]:
    names = [c.get("name") for c in sorted(coco.get("categories", []), key=lambda c: c["id"])]
    if names != list(classes):
        raise DatasetError(
            f"coco/{split}.json categories {names} do not match the dataset classes "
            f"{list(classes)}; re-run detect convert"
        )
    return {int(c["id"]): classes.index(c["name"]) for c in coco["categories"]}


def _read_image(record: Mapping[str, Any], split: str) -> tuple[int, str, int, int, str]:
    try:
        return (
            int(record["id"]),
            str(record["file_name"]),
            int(record["width"]),
            int(record["height"]),
            short_patient_id(str(record["patient_id"])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(
            f"coco/{split}.json: an image lacks id/file_name/width/height/patient_id "
            f"({exc!r}); re-run detect convert"
        ) from None


def _boxes(coco: Mapping[str, Any], cat_index: Mapping[int, int], split: str,
           mode: str, classes: Sequence[str]) -> dict[int, list[GtBox]]:
    boxes: dict[int, list[GtBox]] = {}
    for ann in coco.get("annotations", []):
        try:
            index = cat_index[int(ann["category_id"])]
            xyxy = coco_to_xyxy(ann["bbox"])
            image_id = int(ann["image_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"coco/{split}.json: annotation {ann.get('id')!r} is not usable ({exc!r}); "
                f"re-run detect convert"
            ) from None
        letter = _letter(ann.get("histology"))
        if letter is None and mode == "histology":
            letter = _letter(classes[index])
        boxes.setdefault(image_id, []).append(GtBox(int(ann.get("id", 0)), xyxy, index, letter))
    return boxes


def load_truth(dataset: DatasetInfo, split: str) -> SplitTruth:
    """Read the ground truth of ``split``.

    Raises:
        DatasetError: the split's COCO file is missing or not what ``detect convert`` writes.
    """
    coco = dataset.load_coco(split)
    classes = tuple(dataset.classes)
    cat_index = _category_index(coco, classes, split)
    boxes = _boxes(coco, cat_index, split, dataset.class_mode, classes)
    images: dict[int, GtImage] = {}
    letters: dict[str, str | None] = {}
    for record in sorted(coco.get("images", []), key=lambda r: int(r.get("id", 0))):
        image_id, file_name, width, height, patient = _read_image(record, split)
        letter = _patient_letter(dataset, patient, record)
        letters[patient] = letter
        image_boxes = boxes.get(image_id, [])
        if dataset.class_mode != "histology":
            image_boxes = [b if b.letter else GtBox(b.ann_id, b.xyxy, b.class_index, letter)
                           for b in image_boxes]
        images[image_id] = GtImage(
            image_id=image_id,
            file_name=file_name,
            width=width,
            height=height,
            patient_id=patient,
            scan=str(record.get("series_instance_uid") or f"{patient}/unknown-series"),
            sop_uid=str(record.get("sop_instance_uid") or ""),
            boxes=tuple(image_boxes),
            slice_index=_slice_index(record.get("slice_index")),
        )
    stray = set(boxes) - set(images)
    if stray:
        raise DatasetError(
            f"coco/{split}.json: {len(stray)} annotations point at missing images "
            f"(e.g. image_id {min(stray)}); re-run detect convert"
        )
    return SplitTruth(split, classes, dataset.class_mode, images, letters, coco)


def class_index_of(prediction: Prediction, classes: Sequence[str]) -> int | None:
    """The 0-based dataset class of a record (module docstring), or None."""
    if len(classes) == 1:
        return 0
    upper = [c.upper() for c in classes]
    label = prediction.label.strip().upper()
    if label in upper:
        return upper.index(label)
    if label:
        letter = histology_argmax(prediction.histology)
        return upper.index(letter.upper()) if letter and letter.upper() in upper else None
    if 1 <= prediction.category_id <= len(classes):
        return prediction.category_id - 1
    return None


def check_categories(predictions: Sequence[Prediction], classes: Sequence[str]) -> None:
    """Refuse a record whose ``category_id`` names no class of the dataset, or disagrees
    with its ``label``. The classes are 1..len(classes); on a one-class (tumour) dataset
    also the 1..4 of a histology detector's letters, which are scored as tumours.

    Raises:
        PredictionsError: naming the first such record.
    """
    known = len(classes) if len(classes) > 1 else max(len(classes), len(LETTERS))
    upper = [c.upper() for c in classes]
    names = ", ".join(f"{i + 1} {c}" for i, c in enumerate(classes))
    for number, pred in enumerate(predictions):
        where = f"record {number} (slice {pred.sop_instance_uid or pred.image_id})"
        if not 1 <= pred.category_id <= known:
            raise PredictionsError(
                f"{where}: category_id {pred.category_id} is not a class of the dataset "
                f"({names}); pass predictions made for this dataset's classes"
            )
        label = pred.label.strip().upper()
        if len(classes) > 1 and label in upper and upper.index(label) + 1 != pred.category_id:
            raise PredictionsError(
                f"{where}: label {pred.label!r} is category {upper.index(label) + 1} of the "
                f"dataset ({names}) but category_id is {pred.category_id}; the record "
                "contradicts itself"
            )


def assign_predictions(truth: SplitTruth, predictions: Sequence[Prediction]) -> Assignment:
    """Group records by the split's slices (by SOP UID, else by image id)."""
    by_sop = {image.sop_uid: image.image_id for image in truth.images.values() if image.sop_uid}
    by_image: dict[int, list[Detection]] = {image_id: [] for image_id in truth.images}
    outside: list[str] = []
    unmapped = 0
    for order, pred in enumerate(predictions):
        if pred.sop_instance_uid:
            image_id = by_sop.get(pred.sop_instance_uid)
        else:
            image_id = pred.image_id if pred.image_id in truth.images else None
        if image_id is None:
            outside.append(pred.sop_instance_uid or f"image_id={pred.image_id}")
            continue
        index = class_index_of(pred, truth.classes)
        unmapped += index is None
        by_image[image_id].append(
            Detection(image_id, pred.xyxy, pred.score, index, pred.label, pred.histology, order)
        )
    if outside:
        logger.warning(
            "%d predictions are on slices outside the %s split and are excluded (e.g. %s)",
            len(outside), truth.split, outside[0],
        )
    examples = tuple(dict.fromkeys(outside))[:5]
    return Assignment(by_image, len(outside), examples, unmapped)
