"""The same annotation read twice counts once (``duplicate-annotation``).

A copy of a patient's XML folder under another name, or a second copy of an SR, would
otherwise double every box of its slices: the dataset then holds each slice twice and
perfect predictions score mAP50 0.5. Three rules, each reported:

- XML, by slice: the archive names an XML after its slice (``<SOPInstanceUID>.xml``), so
  two XMLs of one name annotate one slice. When they hold the same boxes (same labels and
  corners) the first in path order is used and the others are reported; when they
  differ, none is used and every one is reported (which is right cannot be known).
- SR, by document: two SR files with one SOPInstanceUID are one document; the same
  boxes → the first is read, the others reported; different boxes → none is read.
- SR, by box: two SR documents that box one slice with the same box and finding (every
  corner within :data:`~detect.convert.annotations.SAME_BOX_PX`) give one box.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from detect.convert.issues import Issue
from detect.errors import AnnotationError
from detect.io.sr import SrAnnotation
from detect.io.voc import parse_voc, slice_uid_of

KIND = "duplicate-annotation"


def _xml_signature(path: Path) -> tuple[object, ...]:
    """What an XML says about its slice: its boxes, or its bytes when it cannot be parsed
    (two unparseable copies are the same only byte for byte)."""
    try:
        annotation = parse_voc(path)
    except AnnotationError:
        return ("bytes", hashlib.sha256(path.read_bytes()).hexdigest())
    return tuple(sorted((o.name.strip().upper(), tuple(round(v, 3) for v in o.xyxy))
                        for o in annotation.objects))


def dedupe_xml(xml_files: Sequence[Path], root: Path) -> tuple[list[Path], list[Issue]]:
    """The XMLs to use (one per slice, in the given order) and the duplicates' issues."""
    by_slice: dict[str, list[Path]] = {}
    for path in xml_files:
        by_slice.setdefault(slice_uid_of(path), []).append(path)
    kept: list[Path] = []
    issues: list[Issue] = []
    for path in xml_files:
        group = by_slice[slice_uid_of(path)]
        if len(group) == 1:
            kept.append(path)
            continue
        if path is not group[0]:
            continue
        uid = slice_uid_of(path)
        group = sorted(group, key=lambda p: str(p.relative_to(root)))
        rels = [str(p.relative_to(root)) for p in group]
        signatures = [_xml_signature(p) for p in group]
        if all(s == signatures[0] for s in signatures):
            kept.append(group[0])
            issues.extend(Issue(KIND, rel, f"the same boxes as {rels[0]} (slice {uid}); "
                                "counted once") for rel in rels[1:])
            continue
        detail = (f"{len(group)} XML files annotate slice {uid} with different boxes "
                  f"({', '.join(rels)}); none is used: keep the right one")
        issues.extend(Issue(KIND, rel, detail) for rel in rels)
    return kept, issues


def _sr_signature(sr: SrAnnotation) -> tuple[object, ...]:
    return (
        tuple(sorted((b.sop_instance_uid, tuple(round(v, 3) for v in b.xyxy), b.letter or "",
                      b.finding) for b in sr.boxes)),
        tuple(sorted((p.sop_instance_uid or "", p.kind, p.detail) for p in sr.problems)),
    )


def dedupe_sr(reports: Sequence[tuple[str, SrAnnotation]]
              ) -> tuple[list[tuple[str, SrAnnotation]], list[Issue]]:
    """The SR documents to read (``(rel, report)``, one per SOPInstanceUID, in the given
    order) and the duplicates' issues. A report without a SOPInstanceUID is its own
    document."""
    by_uid: dict[str, list[tuple[str, SrAnnotation]]] = {}
    for rel, sr in reports:
        by_uid.setdefault(sr.sop_instance_uid or f"no-uid:{rel}", []).append((rel, sr))
    kept: list[tuple[str, SrAnnotation]] = []
    issues: list[Issue] = []
    for uid, group in by_uid.items():
        group = sorted(group, key=lambda item: item[0])
        if len(group) == 1:
            kept.append(group[0])
            continue
        rels = [rel for rel, _ in group]
        signatures = [_sr_signature(sr) for _, sr in group]
        if all(s == signatures[0] for s in signatures):
            kept.append(group[0])
            issues.extend(Issue(KIND, rel, f"a copy of the SR document {uid} in {rels[0]}; "
                                "read once") for rel in rels[1:])
            continue
        detail = (f"{len(group)} SR files carry the document UID {uid} with different boxes "
                  f"({', '.join(rels)}); none is read: keep the right one")
        issues.extend(Issue(KIND, rel, detail) for rel in rels)
    chosen = {rel for rel, _ in kept}
    return [item for item in reports if item[0] in chosen], issues
