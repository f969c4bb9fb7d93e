"""Merge per-patient results into the dataset: COCO files, data.yaml, dataset.json.

The merge is deterministic: image and annotation ids follow (split, patient, series,
slice index), so the same inputs and options give byte-identical COCO files whichever
order the workers finished in and however the work was sharded.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detect.boxes import area, xyxy_to_coco
from detect.convert.issues import Issue
from detect.convert.split import SPLIT_NAMES
from detect.dataset import DATASET_FORMAT, DATASET_VERSION
from detect.io.atomic import write_bytes


def sort_key(record: dict[str, Any]) -> tuple[str, str, str, int, str, str]:
    return (
        record["split"],
        record["patient_id"],
        record["series_instance_uid"],
        int(record["slice_index"]),
        record["sop_instance_uid"],
        record["name"],  # a slice's HU-jittered copies after it
    )


def coco_split(records: Sequence[dict[str, Any]], classes: Sequence[str]) -> dict[str, Any]:
    """The COCO dict of one split's records (ids from 1 in sorted order)."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, record in enumerate(sorted(records, key=sort_key), start=1):
        images.append(
            {
                "id": image_id,
                "file_name": f"images/{record['split']}/{record['name']}.png",
                "width": record["width"],
                "height": record["height"],
                **{
                    key: record[key]
                    for key in (
                        "patient_id",
                        "histology",
                        "sop_instance_uid",
                        "series_instance_uid",
                        "study_instance_uid",
                        "source_dicom",
                        "source_xml",
                        "slice_index",
                    )
                },
                "source_sr": record.get("source_sr", []),
                **({"hu_jitter": record["hu_jitter"]} if record.get("hu_jitter") else {}),
            }
        )
        for box in record["boxes"]:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": classes.index(box["label"]) + 1,
                    "bbox": [round(v, 3) for v in xyxy_to_coco(box["xyxy"])],
                    "area": round(area(box["xyxy"]), 3),
                    "iscrowd": 0,
                    "histology": box["letter"],
                }
            )
    return {
        "info": {"description": "detect dataset (Lung-PET-CT-Dx style)", "version": "1"},
        "licenses": [],
        "categories": [
            {"id": i + 1, "name": name, "supercategory": "tumor"} for i, name in enumerate(classes)
        ],
        "images": images,
        "annotations": annotations,
    }


def members(records: Sequence[dict[str, Any]], assignment: dict[str, str]
            ) -> dict[str, list[str]]:
    """The patients of each split: those assigned to it, and those with images in it (a val
    split made of training images holds training patients)."""
    found: dict[str, set[str]] = {s: set() for s in SPLIT_NAMES}
    for patient, split in assignment.items():
        found[split].add(patient)
    for record in records:
        found[record["split"]].add(record["patient_id"])
    return {split: sorted(patients) for split, patients in found.items()}


def _counts(
    records: Sequence[dict[str, Any]], assignment: dict[str, str], letters: dict[str, str]
) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    for split, patients in members(records, assignment).items():
        in_split = [r for r in records if r["split"] == split]
        by_letter: dict[str, dict[str, int]] = {}
        for patient in patients:
            entry = by_letter.setdefault(
                letters[patient], {"patients": 0, "images": 0, "boxes": 0}
            )
            entry["patients"] += 1
        for record in in_split:
            entry = by_letter[record["histology"]]
            entry["images"] += 1
            entry["boxes"] += len(record["boxes"])
        counts[split] = {
            "patients": len(patients),
            "images": len(in_split),
            "negative_images": sum(1 for r in in_split if not r["boxes"]),
            "boxes": sum(len(r["boxes"]) for r in in_split),
            "by_letter": dict(sorted(by_letter.items())),
        }
    return counts


def data_yaml(out: Path, classes: Sequence[str]) -> str:
    """The ultralytics dataset file (absolute path, so it works from any folder)."""
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(classes))
    return (
        f"# written by detect convert\npath: {out.resolve()}\ntrain: images/train\n"
        f"val: images/val\ntest: images/test\nnames:\n{names}\n"
    )


def accounting(
    xml_files: Sequence[str],
    records: Sequence[dict[str, Any]],
    issues: Sequence[Issue],
    sr_files: Sequence[str] = (),
) -> dict[str, Any]:
    """Check that every XML and SR file is converted or reported; list any that is neither."""
    converted = {r["source_xml"] for r in records if r["source_xml"]}
    sr_converted = {rel for r in records for rel in r.get("source_sr", ())}
    reported = {i.path for i in issues if i.root == "annotation"}
    unaccounted = sorted(
        (set(xml_files) - converted - reported) | (set(sr_files) - sr_converted - reported)
    )
    return {
        "xml_files": len(xml_files),
        "xml_converted": len(converted),
        "xml_not_converted": len(set(xml_files) - converted),
        "sr_files": len(sr_files),
        "sr_converted": len(sr_converted),
        "sr_not_converted": len(set(sr_files) - sr_converted),
        "unaccounted": unaccounted,
    }


def write_dataset(
    out: Path, manifest: dict[str, Any], records: Sequence[dict[str, Any]], classes: Sequence[str]
) -> None:
    """Write coco/<split>.json, data.yaml and dataset.json (last, atomically)."""
    for split in SPLIT_NAMES:
        coco = coco_split([r for r in records if r["split"] == split], classes)
        write_bytes(out / "coco" / f"{split}.json", json.dumps(coco, indent=1).encode())
    write_bytes(out / "data.yaml", data_yaml(out, classes).encode())
    write_bytes(out / "dataset.json", manifest_bytes(manifest))


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """dataset.json's bytes (their SHA-256 is the dataset's fingerprint)."""
    return json.dumps(manifest, indent=1).encode()


def build_manifest(
    *,
    records: Sequence[dict[str, Any]],
    issues: Sequence[Issue],
    assignment: dict[str, str],
    letters: dict[str, str],
    base: dict[str, Any],
    xml_files: Sequence[str],
    sr_files: Sequence[str] = (),
) -> dict[str, Any]:
    """dataset.json content (see docs/contracts.md, contract 2)."""
    sizes = [max(r["width"], r["height"]) for r in records]
    # a patient's images in its own split (a val split of training images repeats some)
    patients = {
        patient: {
            "letter": letters[patient],
            "split": split,
            "images": sum(1 for r in records
                          if r["patient_id"] == patient and r["split"] == split),
            "boxes": sum(len(r["boxes"]) for r in records
                         if r["patient_id"] == patient and r["split"] == split),
        }
        for patient, split in sorted(assignment.items())
    }
    return {
        "format": DATASET_FORMAT,
        "version": DATASET_VERSION,
        **base,
        "image_size": max(sizes) if sizes else 0,
        "splits": members(records, assignment),
        "patients": patients,
        "counts": _counts(records, assignment, letters),
        "accounting": accounting(xml_files, records, issues, sr_files),
        "issue_counts": dict(sorted(Counter(i.kind for i in issues).items())),
        "issues": [i.to_json() for i in issues],
    }
