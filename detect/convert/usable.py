"""A convert that finds nothing to use fails, naming the root it looked in.

An empty dataset written with exit code 0 (a root that points one folder too high or
too low, a link not followed, annotations of other patients) looks like success and
is found out only at training time; so each of these is one error line instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from detect.convert.index import DicomIndex
from detect.convert.issues import Issue
from detect.convert.plan import ConversionPlan
from detect.errors import NothingToConvert


def kind_counts(issues: Iterable[Issue]) -> str:
    """``" (12 unknown-label, 1 not-dicom)"`` (most frequent first), or ``""``."""
    counts = Counter(issue.kind for issue in issues)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    text = ", ".join(f"{count} {kind}" for kind, count in ranked)
    return f" ({text})" if text else ""


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"


def require_slices(index: DicomIndex, dicom_root: Path) -> None:
    """Raises NothingToConvert when the DICOM root holds no usable DICOM slice."""
    if index.by_sop:
        return
    raise NothingToConvert(
        f"no DICOM slice under DICOM_ROOT {dicom_root}: {_files(index.files_seen)} looked "
        f"at{kind_counts(index.issues)}; point it at the folder that holds the .dcm files"
    )


def require_annotations(plan: ConversionPlan, annotation_root: Path) -> None:
    """Raises NothingToConvert when no annotation can become an image."""
    if any(task.xml_path or task.sr_boxes
           for patient in plan.patients.values() for task in patient.tasks):
        return
    issues = plan.issues + [i for p in plan.patients.values() for i in p.issues]
    if not plan.xml_files and not plan.sr_files:
        raise NothingToConvert(
            f"no annotation (VOC .xml or DICOM SR) under ANNOTATION_ROOT {annotation_root}"
            f"{kind_counts(issues)}; point it at the folder of <SOPInstanceUID>.xml files or "
            f"of the SR documents"
        )
    raise NothingToConvert(
        f"no usable annotation under ANNOTATION_ROOT {annotation_root}: "
        f"{_sources(len(plan.xml_files), len(plan.sr_files))}{kind_counts(issues)}"
    )


def _sources(xml_files: int, sr_files: int) -> str:
    return f"{xml_files} XML files" + (f", {sr_files} SR files" if sr_files else "")


def require_boxes(
    records: list[dict[str, object]], issues: list[Issue], xml_files: int, root: Path,
    sr_files: int = 0,
) -> None:
    """Raises NothingToConvert when every annotation failed in the workers."""
    if any(record.get("boxes") for record in records):
        return
    annotation_issues = [i for i in issues if i.root == "annotation"]
    raise NothingToConvert(
        f"no usable annotation under ANNOTATION_ROOT {root}: {_sources(xml_files, sr_files)}, "
        f"none converted{kind_counts(annotation_issues)}"
    )
