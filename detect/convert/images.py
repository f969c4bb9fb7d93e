"""Worker side of conversion: one planned image → PNG + YOLO label + record, or issues.

Runs in worker processes; everything it needs travels in the task and the settings.
Files are written atomically (temporary name, then rename), so an interrupted run never
leaves a half-written image that a re-run would take as done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detect.boxes import clip_xyxy, is_finite, xyxy_to_yolo
from detect.convert.issues import Issue
from detect.convert.plan import ImageTask
from detect.errors import AnnotationError, DicomError
from detect.histology import normalise_label
from detect.io.atomic import write_bytes
from detect.io.dicom import (
    DEFAULT_MAX_PIXELS,
    ImageTooLargeError,
    MissingRescaleError,
    read_hu,
    read_rgb,
)
from detect.io.paths import inside
from detect.io.voc import VocAnnotation, parse_voc
from detect.recipe import ChannelRecipe

PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]


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



def encode_png(image: np.ndarray) -> bytes:
    """RGB uint8 image → PNG bytes (cv2 wants BGR)."""
    ok, buffer = cv2.imencode(".png", image[:, :, ::-1], PNG_PARAMS)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return bytes(buffer.tobytes())


def _boxes(
    task: ImageTask, annotation: VocAnnotation, classes: tuple[str, ...]
) -> tuple[list[dict[str, Any]], list[Issue], bool]:
    """Validated boxes of one XML; the flag is False when the image must be skipped."""
    rel = task.xml_rel or ""
    issues: list[Issue] = []
    boxes: list[dict[str, Any]] = []
    for obj in annotation.objects:
        try:
            letter, case_changed = normalise_label(obj.name)
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
                    f"object name {letter!r} disagrees "
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
                Issue("box-invalid", rel, f"box {list(obj.xyxy)} {why}", action="object-dropped")
            )
            continue
        if clipped.clipped:
            issues.append(
                Issue(
                    "box-clipped",
                    rel,
                    f"box {list(obj.xyxy)} clipped to {list(clipped.xyxy)}",
                    action="converted",
                )
            )
        label = letter if classes != ("tumor",) else "tumor"
        boxes.append({"xyxy": list(clipped.xyxy), "label": label, "letter": letter})
    if not boxes:
        for issue in issues:  # nothing is converted: downgrade the warnings
            if issue.kind == "box-invalid":
                return [], [Issue("box-invalid", rel, issue.detail)], False
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
    return recipe.render(by_offset)


def _pixel_issue_kind(exc: DicomError) -> str:
    if isinstance(exc, ImageTooLargeError):
        return "image-too-large"
    if isinstance(exc, MissingRescaleError):
        return "missing-rescale"
    return "unreadable-dicom"


def _yolo_text(boxes: list[dict[str, Any]], classes: tuple[str, ...], w: int, h: int) -> str:
    lines = []
    for box in boxes:
        cx, cy, bw, bh = xyxy_to_yolo(box["xyxy"], w, h)
        lines.append(f"{classes.index(box['label'])} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def process_task(task: ImageTask, split: str, settings: WorkerSettings) -> TaskResult:
    """Convert one planned image. Never raises for a per-item fault: returns issues."""
    rel = task.xml_rel or task.dicom_rel
    boxes: list[dict[str, Any]] = []
    issues: list[Issue] = []
    if task.xml_path is not None:
        try:
            annotation = parse_voc(Path(task.xml_path))
        except AnnotationError as exc:
            return TaskResult(None, [Issue(exc.kind, rel, exc.detail)])
        if not annotation.objects:
            return TaskResult(None, [Issue("empty-annotation", rel, "no <object> in the file")])
        boxes, issues, usable = _boxes(task, annotation, settings.classes)
        if not usable:
            return TaskResult(None, issues)
    try:
        image = _render(task, ChannelRecipe.from_dict(settings.recipe), settings.max_pixels)
    except DicomError as exc:
        detail = f"{task.dicom_rel}: {exc}"
        root = "annotation" if task.xml_rel else "dicom"
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
        "source_xml": task.xml_rel,
        "slice_index": task.slice_index,
        "fused": task.fused,
        "boxes": boxes,
    }
    return TaskResult(record, issues)
