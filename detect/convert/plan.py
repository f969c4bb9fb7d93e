"""Match annotation files to indexed slices and plan one task per output image.

Everything decided here needs only headers and file names of XMLs (``<SOPInstanceUID>.xml``
is the archive's link between an annotation and its slice); pixels and XML contents are
read later, in the workers, and only for what is planned. DICOM SR annotations name their
slices inside, so they are read here (:mod:`detect.convert.annotations`) and their boxes
travel in the tasks; a slice with an XML and SR boxes is one task holding both.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from detect.convert.annotations import SourceBox, find_annotations
from detect.convert.augment import JitterDraw, copy_name
from detect.convert.checks import sr_identity_issues, stack_problem
from detect.convert.duplicates import dedupe_xml
from detect.convert.index import DicomIndex, walk_issues
from detect.convert.issues import Issue
from detect.convert.negatives import LungSlices, lung_slices
from detect.histology import patient_letter, short_patient_id
from detect.io.dicom import SliceHeader
from detect.io.dicom_limits import DEFAULT_MAX_PIXELS
from detect.io.paths import safe_component
from detect.io.slice_order import Stacking
from detect.io.voc import slice_uid_of

#: Negatives are taken this many slices away from the annotated span of a series at least.
NEGATIVE_MARGIN_SLICES = 5


@dataclass(frozen=True)
class ImageTask:
    """One image to write: an annotated slice (an XML, SR boxes, or both), or a negative
    (neither)."""

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
    sr_boxes: tuple[SourceBox, ...] = ()
    #: A jittered copy of the slice's image (detect.convert.augment); None: the image.
    jitter: JitterDraw | None = None

    @property
    def name(self) -> str:
        """The file name (without suffix) of its image and label: never a path, whatever
        the header held (see :func:`detect.io.paths.safe_component`)."""
        if self.jitter is not None:
            return copy_name(self.original_name, self.jitter.copy)
        return self.original_name

    @property
    def original_name(self) -> str:
        """The name of the slice's own image (a copy's original)."""
        return f"{safe_component(self.patient_id)}_{safe_component(self.sop_instance_uid)}"

    @property
    def annotation_key(self) -> str:
        """What the task's annotations are, for the resume key: the XML's path, and a
        digest of the SR boxes when there are any."""
        if not self.sr_boxes:
            return self.xml_rel or ""
        boxes = [(b.rel, b.xyxy, b.letter, b.finding, b.where, b.invalid) for b in self.sr_boxes]
        digest = hashlib.sha256(json.dumps(boxes).encode()).hexdigest()[:16]
        return f"{self.xml_rel or ''}|sr:{digest}"


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
    sr_files: list[str] = field(default_factory=list)
    sr_paths: set[str] = field(default_factory=set)
    #: ``--negatives-from lungs``: series without a lung field (UID → why).
    lungs_unavailable: dict[str, str] = field(default_factory=dict)


def _letter_of(header: SliceHeader, fallback: str) -> str:
    for candidate in (header.patient_id, fallback):
        try:
            return patient_letter(candidate)
        except ValueError:
            continue
    return "?"


def _neighbour_picks(
    index: DicomIndex, header: SliceHeader, stacking: Stacking
) -> tuple[int, tuple[tuple[int, int], ...]]:
    """The slice's place in its series, and (offset, place) of each slice it stacks."""
    position = index.series()[header.series_instance_uid].index(header)
    picks = index.neighbours(header.series_instance_uid, stacking)[position]
    return position, tuple(zip(stacking.offsets, picks))


def _neighbours(
    index: DicomIndex, header: SliceHeader, stacking: Stacking
) -> tuple[int, tuple[tuple[int, str], ...]]:
    series = index.series()[header.series_instance_uid]
    position, picks = _neighbour_picks(index, header, stacking)
    return position, tuple((offset, str(series[j].path)) for offset, j in picks)


def _task(
    index: DicomIndex,
    header: SliceHeader,
    patient: str,
    letter: str,
    stacking: Stacking,
    xml: Path | None,
    annotation_root: Path,
    sr_boxes: tuple[SourceBox, ...] = (),
) -> ImageTask:
    position, neighbours = _neighbours(index, header, stacking)
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
        sr_boxes=sr_boxes,
    )


#: How a slice's :meth:`~detect.io.dicom.SliceHeader.unusable` reason is accounted for.
_KINDS = {"fused": "fused-image", "pet": "unsupported-dicom", "not-ct": "unsupported-dicom",
          "multi-frame": "unsupported-dicom"}


def _unusable(header: SliceHeader, fused_mode: str, max_pixels: int) -> tuple[str, str] | None:
    found = header.unusable(max_pixels)
    if found is None:
        return None
    reason, detail = found
    if reason == "fused":
        if fused_mode == "include":
            return None
        detail = ("secondary-capture fused PET/CT image (RGB screenshot); excluded by "
                  "default, convert with --fused include")
    return _KINDS.get(reason, reason), detail


def _problem(index: DicomIndex, header: SliceHeader, fused_mode: str, max_pixels: int,
             stacking: Stacking) -> tuple[str, str] | None:
    """:func:`_unusable`, then whether a CT slice stacks with its 2.5d neighbours."""
    found = _unusable(header, fused_mode, max_pixels)
    if found is not None or header.is_fused or stacking.single:
        return found
    series = index.series()[header.series_instance_uid]
    position, picks = _neighbour_picks(index, header, stacking)
    problem = stack_problem(series, position, picks)
    return None if problem is None else ("neighbour-mismatch", problem)


def _missing(index: DicomIndex, sop: str) -> tuple[str, str]:
    """The issue of an annotation whose slice is not in the index."""
    if sop in index.conflicts:
        return "uid-conflict", index.conflicts[sop]
    return "missing-dicom", f"no DICOM slice with SOPInstanceUID {sop} under the DICOM root"


def _id_like(patient_id: str) -> str:
    """A patient ID from inside an SR, only when it has the collection's form (it may name
    a folder later); empty otherwise."""
    try:
        patient_letter(patient_id)
    except ValueError:
        return ""
    return short_patient_id(patient_id)


def _sr_issues(boxes: Sequence[SourceBox], kind: str, detail: str) -> list[Issue]:
    return [Issue(kind, box.rel, f"{box.where}: {detail}") for box in boxes]


def plan_conversion(
    index: DicomIndex,
    annotation_root: Path,
    *,
    stacking: Stacking,
    fused_mode: str,
    negatives: int,
    seed: int,
    workers: int = 1,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    exclude: Iterable[Path] = (),
    negatives_from: str = "series",
) -> ConversionPlan:
    """Plan every image; annotations (XML, SR) that cannot be matched or used become issues
    here, and so do the entries of the annotation tree that cannot be walked. Slices
    declaring more than ``max_pixels`` pixel samples are never planned
    (``image-too-large``). ``negatives_from``: ``series`` or ``lungs``
    (:mod:`detect.convert.negatives`)."""
    annotation_root = annotation_root.resolve()
    walked, issues = walk_issues(annotation_root, exclude=exclude, source="annotation")
    sources = find_annotations(
        annotation_root, walked, known_images=(str(h.path) for h in index.by_sop.values()),
        workers=workers,
    )
    xml_files = sources.xml_files
    usable_xml, duplicate_issues = dedupe_xml(xml_files, annotation_root)
    sr_boxes = dict(sources.sr_boxes)
    patients: dict[str, PatientPlan] = {}
    issues.extend(sources.issues)
    issues.extend(duplicate_issues)
    for xml in usable_xml:
        rel = str(xml.relative_to(annotation_root))
        uid = slice_uid_of(xml)
        header = index.by_sop.get(uid)
        slice_sr = tuple(sr_boxes.pop(uid, ()))
        if header is None:
            kind, missing = _missing(index, uid)
            issues.append(Issue(kind, rel, missing))
            issues.extend(_sr_issues(slice_sr, kind, missing))
            continue
        patient = short_patient_id(header.patient_id) or xml.parent.name
        letter = _letter_of(header, xml.parent.name)
        plan = patients.setdefault(patient, PatientPlan(patient, letter))
        slice_sr, mismatched = sr_identity_issues(slice_sr, header, sources.sr_identity)
        plan.issues.extend(mismatched)
        problem = _problem(index, header, fused_mode, max_pixels, stacking)
        if problem is not None:
            plan.issues.append(Issue(problem[0], rel, problem[1]))
            plan.issues.extend(_sr_issues(slice_sr, *problem))
            continue
        plan.tasks.append(
            _task(index, header, patient, plan.letter, stacking, xml, annotation_root, slice_sr)
        )
    for sop, all_boxes in sorted(sr_boxes.items()):
        header = index.by_sop.get(sop)
        if header is None:
            issues.extend(_sr_issues(all_boxes, *_missing(index, sop)))
            continue
        boxes, mismatched = sr_identity_issues(all_boxes, header, sources.sr_identity)
        if not boxes:
            issues.extend(mismatched)
            continue
        sr_patient = _id_like(sources.sr_patients.get(sop, ""))
        patient = short_patient_id(header.patient_id) or sr_patient or "unknown"
        plan = patients.setdefault(patient, PatientPlan(patient, _letter_of(header, sr_patient)))
        plan.issues.extend(mismatched)
        problem = _problem(index, header, fused_mode, max_pixels, stacking)
        if problem is not None:
            plan.issues.extend(_sr_issues(boxes, *problem))
            continue
        plan.tasks.append(
            _task(index, header, patient, plan.letter, stacking, None, annotation_root,
                  tuple(boxes))
        )
    lungs = None
    if negatives and negatives_from == "lungs":
        annotated = sorted({t.series_instance_uid for p in patients.values() for t in p.tasks})
        lungs = lung_slices({uid: index.series()[uid] for uid in annotated}, workers=workers,
                            max_pixels=max_pixels)
    if negatives:
        for plan in patients.values():
            plan.tasks.extend(
                _negative_tasks(index, plan, stacking, negatives, seed, max_pixels, lungs)
            )
    return ConversionPlan(
        patients, issues, [str(x.relative_to(annotation_root)) for x in xml_files],
        sr_files=sources.sr_files, sr_paths=sources.sr_paths,
        lungs_unavailable=dict(lungs.unavailable) if lungs else {},
    )


def _negative_tasks(
    index: DicomIndex,
    plan: PatientPlan,
    stacking: Stacking,
    count: int,
    seed: int,
    max_pixels: int,
    lungs: LungSlices | None = None,
) -> list[ImageTask]:
    """``count`` CT slices of the patient's annotated series, away from the annotated span
    (and, with ``lungs``, showing the lungs)."""
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
            if far and header.is_ct and _problem(index, header, "exclude", max_pixels,
                                                  stacking) is None \
                    and (lungs is None or lungs.allows(series_uid, position)):
                candidates.append(header)
    rng = random.Random(f"{seed}:negatives:{plan.patient_id}")
    chosen = rng.sample(candidates, min(count, len(candidates)))
    return [
        _task(index, h, plan.patient_id, plan.letter, stacking, None, Path("."))
        for h in sorted(chosen, key=lambda h: h.sop_instance_uid)
    ]
