"""Tiny hand-made datasets (contract 2 shape) and predictions for the evaluator tests.

No tests here: the builders are shared by tests/test_evaluate*.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detect.boxes import XYXY, area, xyxy_to_coco
from detect.dataset import DatasetInfo, load_dataset
from detect.histology import patient_letter
from detect.predictions import Prediction
from detect.recipe import DEFAULT_RECIPE

SIZE = 64


@dataclass(frozen=True)
class Slice:
    """One slice to write: its patient, series, and boxes as (xyxy, label)."""

    patient: str
    series: str
    boxes: Sequence[tuple[XYXY, str]] = field(default_factory=tuple)
    split: str = "test"


def sop(patient: str, series: str, index: int) -> str:
    return f"1.2.826.0.1.{patient[1:]}.{series}.{index}"


def write_dataset(
    root: Path,
    slices: Sequence[Slice],
    *,
    classes: Sequence[str] = ("A", "B", "E", "G"),
    train: Sequence[str] = ("A0100",),
    images: bool = False,
) -> DatasetInfo:
    """Write dataset.json and coco/<split>.json (and PNGs when ``images``)."""
    root.mkdir(parents=True, exist_ok=True)
    mode = "tumor" if list(classes) == ["tumor"] else "histology"
    splits: dict[str, list[str]] = {"train": sorted(set(train)), "val": [], "test": []}
    for s in slices:
        if s.patient not in splits[s.split]:
            splits[s.split].append(s.patient)
    cocos: dict[str, dict] = {
        name: {
            "categories": [{"id": k + 1, "name": c, "supercategory": "tumor"}
                           for k, c in enumerate(classes)],
            "images": [], "annotations": [],
        }
        for name in ("train", "val", "test")
    }
    for index, s in enumerate(slices):
        coco = cocos[s.split]
        image_id = len(coco["images"]) + 1
        name = f"{s.patient}_{s.series}_{index:03d}"
        coco["images"].append({
            "id": image_id, "file_name": f"images/{s.split}/{name}.png",
            "width": SIZE, "height": SIZE, "patient_id": s.patient,
            "histology": patient_letter(s.patient), "sop_instance_uid": sop(s.patient, s.series,
                                                                             index),
            "series_instance_uid": f"1.2.826.0.2.{s.patient[1:]}.{s.series}",
            "study_instance_uid": f"1.2.826.0.3.{s.patient[1:]}",
            "source_dicom": f"Lung_Dx-{s.patient}/x/{index}.dcm",
            "source_xml": f"{s.patient}/{index}.xml" if s.boxes else None,
            "slice_index": index,
        })
        for xyxy, label in s.boxes:
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": image_id,
                "category_id": list(classes).index(label) + 1, "bbox": xyxy_to_coco(xyxy),
                "area": area(xyxy), "iscrowd": 0,
            })
        if images:
            _write_png(root / coco["images"][-1]["file_name"], index)
    (root / "coco").mkdir(exist_ok=True)
    for name, coco in cocos.items():
        (root / "coco" / f"{name}.json").write_text(json.dumps(coco))
    patients = {p: {"letter": patient_letter(p), "split": n}
                for n, ids in splits.items() for p in ids}
    manifest = {
        "format": "detect-dataset", "version": 1, "classes": list(classes),
        "class_mode": mode, "recipe": DEFAULT_RECIPE.to_dict(), "splits": splits,
        "patients": patients, "image_size": SIZE, "counts": {}, "issues": [],
    }
    (root / "dataset.json").write_text(json.dumps(manifest))
    return load_dataset(root)


def _write_png(path: Path, seed: int) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8))


def gt_as_predictions(
    dataset: DatasetInfo, split: str = "test", *, shift: float = 0.0, score: float = 1.0,
    histology: bool = False,
) -> list[Prediction]:
    """The split's gt boxes as predictions, moved right by ``shift`` x their width."""
    coco = dataset.load_coco(split)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    images = {i["id"]: i for i in coco["images"]}
    out = []
    for ann in coco["annotations"]:
        image = images[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        label = names[ann["category_id"]]
        probs = {k: (0.7 if k == label else 0.1) for k in "ABEG"} if histology else None
        out.append(Prediction(
            sop_instance_uid=image["sop_instance_uid"],
            series_instance_uid=image["series_instance_uid"],
            patient_id=image["patient_id"],
            xyxy=(x + shift * w, y, x + w + shift * w, y + h),
            score=score, label=label, category_id=ann["category_id"], histology=probs,
        ))
    return out


def prediction(image: dict, xyxy: XYXY, score: float, label: str = "A",
               histology: dict[str, float] | None = None) -> Prediction:
    """One prediction on a COCO image record of the dataset."""
    return Prediction(
        sop_instance_uid=image["sop_instance_uid"],
        series_instance_uid=image["series_instance_uid"],
        patient_id=image["patient_id"], xyxy=xyxy, score=score, label=label,
        category_id=("ABEG".index(label) + 1) if label in "ABEG" else 1, histology=histology,
    )
