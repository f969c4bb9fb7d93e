"""Cross-checks between an annotation and the slices it is planned on (headers only).

- An SR names its slices by SOPInstanceUID, but it also says whose report it is: an SR
  whose PatientID or StudyInstanceUID differs from the slice it references describes
  another patient or study (a UID collision, a mislabelled copy), so its boxes on that
  slice are not used (``patient-mismatch``). An SR that leaves either value empty is not
  held to it (IDC's and detect's own SRs fill both).
- A 2.5d image stacks a slice with its neighbours; a neighbour of another size cannot be
  stacked (``neighbour-mismatch``), and the image is skipped rather than rendered from
  a replaced channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from detect.convert.annotations import SourceBox
from detect.convert.issues import Issue
from detect.io.dicom import SliceHeader


def sr_identity_issues(
    boxes: Sequence[SourceBox], header: SliceHeader, identity: Mapping[str, tuple[str, str]]
) -> tuple[tuple[SourceBox, ...], list[Issue]]:
    """The boxes whose SR matches ``header``'s patient and study, and an issue per SR file
    (on this slice) that does not."""
    kept: list[SourceBox] = []
    refused: dict[str, str] = {}
    for box in boxes:
        patient, study = identity.get(box.rel, ("", ""))
        differences = []
        if patient and patient != header.patient_id.strip():
            differences.append(f"PatientID {patient!r} (the slice's: {header.patient_id!r})")
        if study and study != header.study_instance_uid.strip():
            differences.append(f"StudyInstanceUID {study} (the slice's: "
                               f"{header.study_instance_uid})")
        if differences:
            refused.setdefault(box.rel, " and ".join(differences))
        else:
            kept.append(box)
    issues = [
        Issue("patient-mismatch", rel,
              f"the SR declares {why} for slice {header.sop_instance_uid}; its boxes on that "
              "slice are not used")
        for rel, why in sorted(refused.items())
    ]
    return tuple(kept), issues


def stack_problem(series: Sequence[SliceHeader], position: int,
                  neighbours: Sequence[tuple[int, int]]) -> str | None:
    """Why the slice at ``position`` of ``series`` cannot be stacked with its
    ``neighbours`` ((offset, index in the series) pairs; their declared sizes differ), or
    None."""
    centre = series[position]
    for offset, index in neighbours:
        other = series[index]
        if (other.rows, other.columns) != (centre.rows, centre.columns):
            return (
                f"its neighbour {offset:+d} ({other.path.name}) is {other.rows} x "
                f"{other.columns} px, the slice {centre.rows} x {centre.columns}; a 2.5d "
                "image needs slices of one size"
            )
    return None
