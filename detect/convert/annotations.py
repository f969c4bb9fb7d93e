"""Annotation sources of a conversion: VOC XML files and DICOM SR measurement reports.

Under the annotation root, ``*.xml`` files are VOC annotations (the archive's
``<SOPInstanceUID>.xml``, matched to their slice by name and parsed later, in the
workers); any other file that is a DICOM structured report by its content (any name, any
layout; the annotation root may be the DICOM root itself, as in an IDC download) is read
here, and its boxes travel in the image tasks. Image files the DICOM index already knows
are not opened again.

Every SR is accounted for: a file that cannot be used is an ``unreadable-sr`` (too big,
hostile, not TID 1500) or ``empty-annotation`` (no planar ROI group) issue; a group is a
box of its slice, or an issue: ``box-invalid`` (not a pixel rectangle, no image
reference), ``missing-dicom`` (its slice is not under the DICOM root), ``unknown-label``
(finding type not A/B/E/G: the image is skipped, as for an XML), ``label-mismatch``.

The same annotation read twice counts once (:mod:`detect.convert.duplicates`): an SR
document (SOPInstanceUID) read once, and a box two SR documents give one slice kept once
(``duplicate-annotation``). Each SR's PatientID and StudyInstanceUID are kept
(``sr_identity``) so the plan can check them against the slices it boxes.

XML and SR on the same slice (the rule of :func:`merge_sources`): a box in both (every
coordinate within :data:`SAME_BOX_PX`) counts once, with the XML's label; a box in only
one of them is kept and reported as ``sources-differ``, as is a shared box whose labels
differ.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from detect.boxes import XYXY
from detect.convert.duplicates import dedupe_sr
from detect.convert.issues import Issue
from detect.errors import AnnotationError
from detect.histology import LETTERS, normalise_label
from detect.io.sr import SrAnnotation, read_sr_boxes
from detect.io.sr_file import is_sr_file
from detect.io.voc import parse_voc
from detect.workers import worker_pool

log = logging.getLogger(__name__)

#: Two boxes of one slice from two sources are the same box when no coordinate differs
#: by more than this (px). IDC's SR coordinates are the XML's integers, as they are.
SAME_BOX_PX = 0.5


@dataclass(frozen=True)
class SourceBox:
    """One box of a slice as a source gives it, before it is checked against the slice.

    XML: ``name`` is the object name as written. SR: ``letter`` is the finding type's
    histology letter (None: not one of the four), ``finding`` the code as written, and
    ``where`` the measurement group. ``invalid`` says why an SR group is not a usable box
    (its ``xyxy`` is then meaningless). ``rel``: the file, relative to the annotation root.
    """

    xyxy: XYXY
    rel: str
    name: str = ""
    from_sr: bool = False
    letter: str | None = None
    finding: str = ""
    where: str = ""
    invalid: str = ""

    def label(self) -> tuple[str, bool]:
        """``(letter, case_changed)``.

        Raises:
            AnnotationError: ``unknown-label`` when the name or finding is not A/B/E/G.
        """
        if not self.from_sr:
            return normalise_label(self.name)
        if self.letter in LETTERS:
            return self.letter, False
        raise AnnotationError(
            "unknown-label",
            f"{self.where}: finding type {self.finding} is not one of the four histologies "
            f"({', '.join(LETTERS)}); the slice is skipped",
        )

    def describe(self, letter: str) -> str:
        """How a message names this box's label."""
        if self.from_sr:
            return f"{self.where}: finding {letter!r} ({self.finding})"
        return f"object name {letter!r}"

    def prefix(self) -> str:
        return f"{self.where}: " if self.from_sr else ""


@dataclass
class AnnotationSources:
    """What the annotation root holds. ``sr_files`` and ``xml_files`` are relative to it;
    ``sr_paths`` are the SR files' absolute paths (their DICOM index issue is dropped)."""

    xml_files: list[Path] = field(default_factory=list)
    sr_files: list[str] = field(default_factory=list)
    sr_paths: set[str] = field(default_factory=set)
    sr_boxes: dict[str, list[SourceBox]] = field(default_factory=dict)
    sr_patients: dict[str, str] = field(default_factory=dict)  # SOP UID → SR's PatientID
    #: SR file (relative) → the (PatientID, StudyInstanceUID) it declares
    sr_identity: dict[str, tuple[str, str]] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)


def _read_one(path: str) -> tuple[str, SrAnnotation | None, str, str]:
    """Worker: an SR's boxes, or the reason it cannot be used (errors do not pickle)."""
    try:
        return path, read_sr_boxes(Path(path)), "", ""
    except AnnotationError as exc:
        return path, None, exc.kind, exc.detail


def _read_all(paths: list[str], workers: int) -> list[tuple[str, SrAnnotation | None, str, str]]:
    if workers <= 1 or len(paths) <= 1:
        return [_read_one(p) for p in paths]
    with worker_pool(min(workers, len(paths))) as pool:
        return list(pool.map(_read_one, paths, chunksize=4))


def _add_sr(sources: AnnotationSources, rel: str, sr: SrAnnotation) -> None:
    if not sr.boxes and not sr.problems:
        sources.issues.append(
            Issue("empty-annotation", rel, "SR without a planar ROI measurement group")
        )
        return
    sources.sr_identity[rel] = (sr.patient_id.strip(), sr.study_instance_uid.strip())
    for box in sr.boxes:
        slice_boxes = sources.sr_boxes.setdefault(box.sop_instance_uid, [])
        twin = next((b for b in slice_boxes if b.rel != rel and b.letter == box.letter
                     and not b.invalid and _same(b.xyxy, box.xyxy)), None)
        if twin is not None:
            sources.issues.append(Issue(
                "duplicate-annotation", rel,
                f"{box.where}: box {_box_text(box.xyxy)} on slice {box.sop_instance_uid} is "
                f"also in {twin.rel} ({twin.where}); counted once", action="converted"))
            continue
        slice_boxes.append(
            SourceBox(box.xyxy, rel, from_sr=True, letter=box.letter, finding=box.finding,
                      where=box.where)
        )
        sources.sr_patients.setdefault(box.sop_instance_uid, sr.patient_id)
    for problem in sr.problems:
        if problem.sop_instance_uid is None:  # no slice to drop it from
            sources.issues.append(Issue(problem.kind, rel, problem.detail))
            continue
        sources.sr_boxes.setdefault(problem.sop_instance_uid, []).append(
            SourceBox((0.0, 0.0, 0.0, 0.0), rel, from_sr=True, invalid=problem.detail,
                      where=problem.where)
        )
        sources.sr_patients.setdefault(problem.sop_instance_uid, sr.patient_id)


def find_annotations(
    annotation_root: Path, files: Iterable[Path], *, known_images: Iterable[str] = (),
    workers: int = 1,
) -> AnnotationSources:
    """Every XML and every SR among ``files`` (the walk of ``annotation_root``, resolved),
    SRs read; files that are known images (the DICOM index's) are not opened again."""
    root = annotation_root.resolve()
    skip = set(known_images)
    sources = AnnotationSources()
    candidates: list[str] = []
    for path in files:
        if path.suffix.lower() == ".xml":
            sources.xml_files.append(path)
        elif str(path) not in skip and is_sr_file(path):
            candidates.append(str(path))
    reports: list[tuple[str, SrAnnotation]] = []
    for text, sr, kind, detail in _read_all(candidates, workers):
        rel = str(Path(text).relative_to(root))
        sources.sr_files.append(rel)
        sources.sr_paths.add(text)
        if sr is None:
            sources.issues.append(Issue(kind, rel, detail))
        else:
            reports.append((rel, sr))
    unique, duplicates = dedupe_sr(reports)
    sources.issues.extend(duplicates)
    for rel, sr in unique:
        _add_sr(sources, rel, sr)
    if candidates:
        log.info("%d DICOM SR files under %s, %d slices with SR boxes", len(candidates), root,
                 len(sources.sr_boxes))
    return sources


def reconcile_index_issues(index_issues: Sequence[Issue], dicom_root: Path, sr_paths: set[str]
                           ) -> list[Issue]:
    """The DICOM index's issues, less its ``unsupported-dicom`` for the SR files that the
    annotation side read (they are annotations, accounted for there); one it did not read
    says that it is an SR and how to have it read."""
    root = dicom_root.resolve()
    out = []
    for issue in index_issues:
        if issue.kind == "unsupported-dicom" and issue.root == "dicom":
            path = root / issue.path
            if str(path) in sr_paths:
                continue
            if is_sr_file(path):
                issue = Issue(issue.kind, issue.path,
                              "a DICOM SR document, not an image; its boxes are read when "
                              "ANNOTATION_ROOT holds it (an IDC download: pass the DICOM root "
                              "as ANNOTATION_ROOT too)", root="dicom")
        out.append(issue)
    return out


def _same(a: XYXY, b: XYXY) -> bool:
    return max(abs(u - v) for u, v in zip(a, b)) <= SAME_BOX_PX


def _box_text(xyxy: XYXY) -> str:
    return "[" + ", ".join(f"{v:g}" for v in xyxy) + "]"


def merge_sources(xml: Sequence[SourceBox], sr: Sequence[SourceBox]
                  ) -> tuple[list[SourceBox], list[Issue]]:
    """The boxes of a slice annotated by an XML and by SR groups (module docstring rule)."""
    if not xml or not sr:
        return [*xml, *sr], []
    kept, issues, matched = list(xml), [], set()
    xml_rel, sr_rels = xml[0].rel, ", ".join(sorted({b.rel for b in sr}))
    for box in sr:
        if box.invalid:
            kept.append(box)
            continue
        twin = next((j for j, x in enumerate(xml) if j not in matched and _same(x.xyxy, box.xyxy)),
                    None)
        if twin is None:
            kept.append(box)
            issues.append(Issue("sources-differ", box.rel,
                                f"{box.where}: box {_box_text(box.xyxy)} is not in {xml_rel}; "
                                "both kept", action="converted"))
            continue
        matched.add(twin)
        xml_name = xml[twin].name.strip().upper()
        if box.letter != xml_name:
            issues.append(Issue("sources-differ", box.rel,
                                f"{box.where}: same box as {xml_rel}, whose label is "
                                f"{xml[twin].name!r}, but finding type {box.finding}; "
                                "the XML's label is used", action="converted"))
    for j, box in enumerate(xml):
        if j not in matched:
            issues.append(Issue("sources-differ", box.rel,
                                f"box {_box_text(box.xyxy)} is in no SR group of the slice "
                                f"({sr_rels}); both kept", action="converted"))
    return kept, issues


@dataclass
class Gathered:
    """A slice's boxes from all its sources; ``xml_used``: its XML gave at least one."""

    boxes: list[SourceBox]
    issues: list[Issue]
    xml_used: bool


def gather_boxes(xml_path: str | None, xml_rel: str | None, sr_boxes: Sequence[SourceBox]
                 ) -> Gathered:
    """Parse a task's XML (if any) and merge its objects with the task's SR boxes. An XML
    that cannot be used is an issue; the slice still has its SR boxes, if any."""
    issues: list[Issue] = []
    xml_boxes: list[SourceBox] = []
    if xml_path is not None:
        rel = xml_rel or ""
        try:
            annotation = parse_voc(Path(xml_path))
        except AnnotationError as exc:
            issues.append(Issue(exc.kind, rel, exc.detail))
        else:
            if not annotation.objects:
                issues.append(Issue("empty-annotation", rel, "no <object> in the file"))
            xml_boxes = [SourceBox(o.xyxy, rel, name=o.name) for o in annotation.objects]
    boxes, merge_issues = merge_sources(xml_boxes, sr_boxes)
    return Gathered(boxes, issues + merge_issues, bool(xml_boxes))
