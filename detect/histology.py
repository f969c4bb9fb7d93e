"""The histology taxonomy of Lung-PET-CT-Dx: the four letters, their names, and how a
patient ID carries its patient's letter (``Lung_Dx-A0002``: A, adenocarcinoma)."""

from __future__ import annotations

import re

from detect.errors import AnnotationError

#: Histology letters of Lung-PET-CT-Dx, in class-index order.
LETTERS: tuple[str, ...] = ("A", "B", "E", "G")
LETTER_NAMES: dict[str, str] = {
    "A": "adenocarcinoma",
    "B": "small cell carcinoma",
    "E": "large cell carcinoma",
    "G": "squamous cell carcinoma",
}

_PATIENT_ID = re.compile(r"(?:Lung_Dx-)?([A-Za-z])(\d{4})$")


def patient_letter(patient_id: str) -> str:
    """The histology letter in a Lung-PET-CT-Dx patient ID (``Lung_Dx-A0002`` or ``A0002``).

    Raises:
        ValueError: if the ID is not of that form.
    """
    match = _PATIENT_ID.search(patient_id.strip())
    if match is None:
        raise ValueError(
            f"expected a Lung-PET-CT-Dx patient ID like 'Lung_Dx-A0002' or 'A0002', "
            f"got {patient_id!r}"
        )
    return match.group(1).upper()


def short_patient_id(patient_id: str) -> str:
    """``Lung_Dx-A0002`` → ``A0002`` (the annotation folder name); other IDs unchanged."""
    match = _PATIENT_ID.search(patient_id.strip())
    return f"{match.group(1).upper()}{match.group(2)}" if match else patient_id.strip()


def normalise_label(name: str) -> tuple[str, bool]:
    """Map an object name to a histology letter.

    Returns:
        ``(letter, case_changed)``; ``case_changed`` is True for a lowercase letter.

    Raises:
        AnnotationError: kind ``unknown-label`` for anything that is not A, B, E or G.
    """
    stripped = name.strip()
    upper = stripped.upper()
    if upper in LETTERS:
        return upper, stripped != upper
    raise AnnotationError(
        "unknown-label",
        f"object name {name!r} is not a histology letter (expected one of "
        f"{', '.join(LETTERS)}, any case)",
    )
