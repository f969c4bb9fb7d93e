"""Worker side of conversion: one planned image → PNG + YOLO label + record, or issues.

Runs in worker processes; everything it needs travels in the task and the settings.
Files are written atomically (temporary name, then rename), so an interrupted run never
leaves a half-written image that a re-run would take as done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detect.boxes import clip_xyxy, is_finite, xyxy_to_yolo
from detect.convert.annotations import SourceBox, gather_boxes
from detect.convert.issues import Issue
from detect.convert.plan import ImageTask
from detect.errors import AnnotationError, DicomError
from detect.io.atomic import write_bytes
from detect.io.dicom import (
    DEFAULT_MAX_PIXELS,
    decode_issue_kind,
    read_hu,
    read_rgb,
)
from detect.io.paths import inside
from detect.io.png import encode_png
from detect.recipe import ChannelRecipe


@dataclass(frozen=True)
class WorkerSettings:
    out: str
    recipe: dict[str, Any]
    classes: tuple[str, ...]
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass
class TaskResult:
    record: dict[str, Any] | None
    issues: list[Issue] = field(default_factory=list)



def _boxes(
    task: ImageTask, sources: list[SourceBox], classes: tuple[str, ...]
) -> tuple[list[dict[str, Any]], list[Issue], bool]:
    """Validated boxes of one slice; the flag is False when the image must be skipped."""
    issues: list[Issue] = []
    boxes: list[dict[str, Any]] = []
    for obj in sources:
        rel = obj.rel
        if obj.invalid:
            issues.append(Issue("box-invalid", rel, obj.invalid, action="object-dropped"))
            continue
        try:
            letter, case_changed = obj.label()
        except AnnotationError as exc:
            return [], [Issue(exc.kind, rel, exc.detail)], False
        if case_changed:
            issues.append(
                Issue(
                    "label-case",
                    rel,
                    f"object name {obj.name!r} read as {letter!r}",
                    action="converted",
                )
            )
        if task.letter != "?" and letter != task.letter:
            issues.append(
                Issue(
                    "label-mismatch",
                    rel,
                    f"{obj.describe(letter)} disagrees "
                    f"with patient {task.patient_id} (letter {task.letter}); "
                    f"labelled {task.letter}",
                    action="converted",
                )
            )
            letter = task.letter
        clipped = clip_xyxy(obj.xyxy, task.columns, task.rows)
        if not clipped.valid:
            why = (
                f"has no area inside the {task.columns}x{task.rows} image"
                if is_finite(obj.xyxy)
                else "has a corner that is not a finite number"
            )
            issues.append(
                Issue("box-invalid", rel, f"{obj.prefix()}box {list(obj.xyxy)} {why}",
                      action="object-dropped")
            )
            continue
        if clipped.clipped:
            issues.append(
                Issue(
                    "box-clipped",
                    rel,
                    f"{obj.prefix()}box {list(obj.xyxy)} clipped to {list(clipped.xyxy)}",
                    action="converted",
                )
            )
        label = letter if classes != ("tumor",) else "tumor"
        boxes.append({"xyxy": list(clipped.xyxy), "label": label, "letter": letter,
                      "source": "sr" if obj.from_sr else "xml"})
    if not boxes:
        for issue in issues:  # nothing is converted: downgrade the warnings
            if issue.kind == "box-invalid":
                return [], [Issue("box-invalid", issue.path, issue.detail)], False
        return [], issues, False
    return boxes, issues, True


def _render(task: ImageTask, recipe: ChannelRecipe, max_pixels: int) -> np.ndarray:
    if task.fused:
        return read_rgb(Path(task.dicom_path), max_pixels=max_pixels)
    hu_cache: dict[str, np.ndarray] = {}
    by_offset = {}
    for offset, path in task.neighbours:
        if path not in hu_cache:
            hu_cache[path] = read_hu(Path(path), max_pixels=max_pixels)
        by_offset[offset] = hu_cache[path]
    shapes = {offset: hu.shape for offset, hu in by_offset.items()}
    if len(set(shapes.values())) > 1:
        raise NeighbourMismatch(
            f"the slices of its {len(shapes)}-slice stack have different sizes "
            f"({', '.join(f'{o:+d}: {s[0]}x{s[1]}' for o, s in sorted(shapes.items()))}); "
            f"a 2.5d image needs one size"
        )
    if task.jitter is not None:
        return task.jitter.recipe(recipe).render(task.jitter.noisy(by_offset))
    return recipe.render(by_offset)


class NeighbourMismatch(DicomError):
    """A 2.5d neighbour slice decodes to another size than the slice it flanks."""


def _pixel_issue_kind(exc: DicomError) -> str:
    if isinstance(exc, NeighbourMismatch):
        return "neighbour-mismatch"
    return decode_issue_kind(exc, "unreadable-dicom")


def _yolo_text(boxes: list[dict[str, Any]], classes: tuple[str, ...], w: int, h: int) -> str:
    lines = []
    for box in boxes:
        cx, cy, bw, bh = xyxy_to_yolo(box["xyxy"], w, h)
        lines.append(f"{classes.index(box['label'])} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def process_task(task: ImageTask, split: str, settings: WorkerSettings) -> TaskResult:
    """Convert one planned image. Never raises for a per-item fault: returns issues."""
    sr_rels = sorted({b.rel for b in task.sr_boxes})
    annotated = task.xml_path is not None or bool(sr_rels)
    rel = task.xml_rel or (sr_rels[0] if sr_rels else task.dicom_rel)
    boxes: list[dict[str, Any]] = []
    issues: list[Issue] = []
    xml_used = False
    if annotated:
        found = gather_boxes(task.xml_path, task.xml_rel, task.sr_boxes)
        boxes, issues, usable = _boxes(task, found.boxes, settings.classes)
        if not usable:  # nothing of the slice is converted: "both kept" would be wrong
            kept = [i for i in found.issues if i.kind != "sources-differ"]
            return TaskResult(None, kept + issues)
        issues = found.issues + issues
        xml_used = found.xml_used
    try:
        image = _render(task, ChannelRecipe.from_dict(settings.recipe), settings.max_pixels)
    except DicomError as exc:
        detail = f"{task.dicom_rel}: {exc}"
        root = "annotation" if annotated else "dicom"
        return TaskResult(None, [Issue(_pixel_issue_kind(exc), rel, detail, root=root)])
    height, width = image.shape[:2]
    out = Path(settings.out)
    write_bytes(inside(out, "images", split, f"{task.name}.png"), encode_png(image))
    label_text = _yolo_text(boxes, settings.classes, width, height)
    write_bytes(inside(out, "labels", split, f"{task.name}.txt"), label_text.encode())
    record = {
        "name": task.name,
        "split": split,
        "patient_id": task.patient_id,
        "histology": task.letter,
        "width": width,
        "height": height,
        "sop_instance_uid": task.sop_instance_uid,
        "series_instance_uid": task.series_instance_uid,
        "study_instance_uid": task.study_instance_uid,
        "source_dicom": task.dicom_rel,
        "source_xml": task.xml_rel if xml_used else None,
        "source_sr": sr_rels,
        "slice_index": task.slice_index,
        "fused": task.fused,
        "boxes": boxes,
    }
    if task.jitter is not None:
        record["copy_of"] = task.original_name
        record["hu_jitter"] = task.jitter.to_dict()
    return TaskResult(record, issues)
