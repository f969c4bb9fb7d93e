"""The histology taxonomy of Lung-PET-CT-Dx: the four letters, their names, and how a
patient ID carries its patient's letter (``Lung_Dx-A0002``: A, adenocarcinoma)."""

from __future__ import annotations

import re
from dataclasses import dataclass

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


# --- SNOMED CT codes of the four histologies (DICOM SR finding types) ---------------------


@dataclass(frozen=True)
class CodedTerm:
    """A coded concept as DICOM writes it: code value, coding scheme designator, meaning."""

    value: str
    scheme: str
    meaning: str

    @property
    def key(self) -> tuple[str, str]:
        """``(scheme, value)``: what identifies the concept (the meaning is only a label)."""
        return (self.scheme, self.value)


#: The finding type of each letter as Imaging Data Commons codes this collection's boxes
#: (analysis result ``lung_pet_ct_dx_annotations``, built with pydicom 3.0.1's
#: ``codes.SCT.Adenocarcinoma`` ... ``codes.SCT.SquamousCellCarcinoma``; same values in
#: pydicom 3.0.2). Writers use these; readers also accept :data:`FINDING_ALIASES`.
FINDING_CODES: dict[str, CodedTerm] = {
    "A": CodedTerm("1187332001", "SCT", "Adenocarcinoma"),
    "B": CodedTerm("74364000", "SCT", "Small cell carcinoma"),
    "E": CodedTerm("22687000", "SCT", "Large cell carcinoma"),
    "G": CodedTerm("1162767002", "SCT", "Squamous cell carcinoma"),
}
#: IDC's finding type for a box whose XML name is not a histology letter.
NEOPLASM = CodedTerm("108369006", "SCT", "Neoplasm")
#: Older or more specific codes for the same histologies, read as the letter: the
#: pre-2021 SNOMED morphology concepts (pydicom: AdenocarcinomaNoSubtype 35917007,
#: "Squamous cell carcinoma, no ICD-O subtype" 28899001), their SNOMED RT ids (SRT), the
#: lung-specific disorders (Adenocarcinoma of lung 254626006, Small cell carcinoma of lung
#: 254632001) and Squamous cell carcinoma (disorder) 402815007.
FINDING_ALIASES: dict[tuple[str, str], str] = {
    ("SCT", "35917007"): "A",
    ("SCT", "254626006"): "A",
    ("SRT", "M-81403"): "A",
    ("SCT", "254632001"): "B",
    ("SRT", "M-80413"): "B",
    ("SRT", "M-80123"): "E",
    ("SCT", "28899001"): "G",
    ("SCT", "402815007"): "G",
    ("SRT", "M-80703"): "G",
}
_LETTER_OF_CODE: dict[tuple[str, str], str] = {
    **{term.key: letter for letter, term in FINDING_CODES.items()},
    **FINDING_ALIASES,
}


def finding_letter(scheme: str, value: str) -> str | None:
    """The histology letter of a finding-type code (``("SCT", "74364000")`` → ``"B"``), or
    None for any other code (Neoplasm included). The meaning text is never used."""
    scheme = scheme.strip().upper()
    if scheme == "SNM3":  # SNOMED RT's older designator, same ids as SRT
        scheme = "SRT"
    return _LETTER_OF_CODE.get((scheme, value.strip()))
