"""Match annotation files to indexed slices and plan one task per output image.

Everything decided here needs only headers and file names of XMLs (``<SOPInstanceUID>.xml``
is the archive's link between an annotation and its slice); pixels and XML contents are
read later, in the workers, and only for what is planned.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from detect.convert.index import DicomIndex, walk_issues
from detect.convert.issues import Issue
from detect.histology import patient_letter, short_patient_id
from detect.io.dicom import SliceHeader
from detect.io.dicom_limits import DEFAULT_MAX_PIXELS
from detect.io.paths import safe_component

#: Negatives are taken this many slices away from the annotated span of a series at least.
NEGATIVE_MARGIN_SLICES = 5


@dataclass(frozen=True)
class ImageTask:
    """One image to write: an annotated slice, or a negative (``xml_path`` None)."""

    patient_id: str
    letter: str
    dicom_path: str
    dicom_rel: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    rows: int
    columns: int
    slice_index: int
    fused: bool
    neighbours: tuple[tuple[int, str], ...]
    xml_path: str | None = None
    xml_rel: str | None = None

    @property
    def name(self) -> str:
        """The file name (without suffix) of its image and label: never a path, whatever
        the header held (see :func:`detect.io.paths.safe_component`)."""
        return f"{safe_component(self.patient_id)}_{safe_component(self.sop_instance_uid)}"


@dataclass
class PatientPlan:
    patient_id: str
    letter: str
    tasks: list[ImageTask] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)


@dataclass
class ConversionPlan:
    patients: dict[str, PatientPlan]
    issues: list[Issue]
    xml_files: list[str]


def _letter_of(header: SliceHeader, xml_path: Path) -> str:
    for candidate in (header.patient_id, xml_path.parent.name):
        try:
            return patient_letter(candidate)
        except ValueError:
            continue
    return "?"


def _neighbours(
    index: DicomIndex, header: SliceHeader, offsets: Iterable[int]
) -> tuple[int, tuple[tuple[int, str], ...]]:
    series = index.series()[header.series_instance_uid]
    position = series.index(header)
    last = len(series) - 1
    pairs = tuple(
        (offset, str(series[min(max(position + offset, 0), last)].path)) for offset in offsets
    )
    return position, pairs


def _task(
    index: DicomIndex,
    header: SliceHeader,
    patient: str,
    letter: str,
    offsets: Iterable[int],
    xml: Path | None,
    annotation_root: Path,
) -> ImageTask:
    position, neighbours = _neighbours(index, header, offsets)
    return ImageTask(
        patient_id=patient,
        letter=letter,
        dicom_path=str(header.path),
        dicom_rel=str(header.path.relative_to(index.root)),
        sop_instance_uid=header.sop_instance_uid,
        series_instance_uid=header.series_instance_uid,
        study_instance_uid=header.study_instance_uid,
        rows=header.rows,
        columns=header.columns,
        slice_index=position,
        fused=header.is_fused,
        neighbours=neighbours,
        xml_path=None if xml is None else str(xml),
        xml_rel=None if xml is None else str(xml.relative_to(annotation_root)),
    )


def _unusable(header: SliceHeader, fused_mode: str, max_pixels: int) -> tuple[str, str] | None:
    too_large = header.size_problem(max_pixels)
    if too_large is not None:
        return "image-too-large", too_large
    if header.is_fused:
        if fused_mode == "include":
            return None
        return "fused-image", (
            "secondary-capture fused PET/CT image (RGB screenshot); excluded by default, "
            "convert with --fused include"
        )
    if header.modality != "CT":
        return "unsupported-dicom", f"modality {header.modality!r}; only CT slices are converted"
    if header.number_of_frames > 1:
        return "unsupported-dicom", f"multi-frame image ({header.number_of_frames} frames)"
    if header.rescale_problem is not None:
        return "missing-rescale", header.rescale_problem
    return None


def plan_conversion(
    index: DicomIndex,
    annotation_root: Path,
    *,
    offsets: tuple[int, ...],
    fused_mode: str,
    negatives: int,
    seed: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    exclude: Iterable[Path] = (),
) -> ConversionPlan:
    """Plan every image; XMLs that cannot be matched or used become issues here, and so
    do the entries of the annotation tree that cannot be walked. Slices declaring more
    than ``max_pixels`` pixel samples are never planned (``image-too-large``)."""
    annotation_root = annotation_root.resolve()
    walked, issues = walk_issues(annotation_root, exclude=exclude, source="annotation")
    xml_files = [p for p in walked if p.suffix.lower() == ".xml"]
    patients: dict[str, PatientPlan] = {}
    for xml in xml_files:
        rel = str(xml.relative_to(annotation_root))
        header = index.by_sop.get(xml.stem)
        if header is None:
            issues.append(
                Issue(
                    "missing-dicom",
                    rel,
                    f"no DICOM slice with SOPInstanceUID {xml.stem} under the DICOM root",
                )
            )
            continue
        patient = short_patient_id(header.patient_id) or xml.parent.name
        plan = patients.setdefault(patient, PatientPlan(patient, _letter_of(header, xml)))
        problem = _unusable(header, fused_mode, max_pixels)
        if problem is not None:
            plan.issues.append(Issue(problem[0], rel, problem[1]))
            continue
        plan.tasks.append(_task(index, header, patient, plan.letter, offsets, xml, annotation_root))
    if negatives:
        for plan in patients.values():
            plan.tasks.extend(
                _negative_tasks(index, plan, offsets, negatives, seed, max_pixels)
            )
    return ConversionPlan(
        patients, issues, [str(x.relative_to(annotation_root)) for x in xml_files]
    )


def _negative_tasks(
    index: DicomIndex,
    plan: PatientPlan,
    offsets: tuple[int, ...],
    count: int,
    seed: int,
    max_pixels: int,
) -> list[ImageTask]:
    """``count`` CT slices of the patient's annotated series, away from the annotated span."""
    spans: dict[str, tuple[int, int]] = {}
    for task in plan.tasks:
        low, high = spans.get(task.series_instance_uid, (task.slice_index, task.slice_index))
        spans[task.series_instance_uid] = (min(low, task.slice_index), max(high, task.slice_index))
    candidates = []
    for series_uid, (low, high) in sorted(spans.items()):
        for position, header in enumerate(index.series()[series_uid]):
            far = (
                position < low - NEGATIVE_MARGIN_SLICES or position > high + NEGATIVE_MARGIN_SLICES
            )
            if far and header.is_ct and _unusable(header, "exclude", max_pixels) is None:
                candidates.append(header)
    rng = random.Random(f"{seed}:negatives:{plan.patient_id}")
    chosen = rng.sample(candidates, min(count, len(candidates)))
    return [
        _task(index, h, plan.patient_id, plan.letter, offsets, None, Path("."))
        for h in sorted(chosen, key=lambda h: h.sop_instance_uid)
    ]
