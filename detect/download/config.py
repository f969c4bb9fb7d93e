"""Options of ``detect download``, checked on construction (``ConfigError``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from detect.dicomweb.config import ServerConfig, check_uid
from detect.download.names import UnsafeValue, check_collection, check_patient_id
from detect.errors import ConfigError
from detect.histology import LETTERS

#: The collection this project is built around.
DEFAULT_COLLECTION = "lung_pet_ct_dx"
#: IDC's public buckets on AWS (what idc-index uses); storage.googleapis.com mirrors them.
DEFAULT_ENDPOINT = "https://s3.amazonaws.com"
MODALITIES: tuple[str, ...] = ("CT", "SR", "PT")
DEFAULT_MODALITIES: tuple[str, ...] = ("CT", "SR")
#: Collection → IDC analysis result that holds its boxes as DICOM SR (``--modality SR``).
BOX_RESULTS: dict[str, str] = {"lung_pet_ct_dx": "lung_pet_ct_dx_annotations"}
#: Collections whose patient IDs carry the histology letter (``Lung_Dx-A0002``).
LETTER_COLLECTIONS: tuple[str, ...] = ("lung_pet_ct_dx",)

_SHORT_LUNG_DX_ID = re.compile(r"[A-Za-z]\d{4}")


def parse_list(text: str | None, option: str | None = None) -> tuple[str, ...]:
    """``"A, b,,E"`` → ``("A", "b", "E")``; None (the option not given) → ``()``.

    Raises:
        ConfigError: ``option`` was given but holds no value (``''``, ``','``, ``' '``):
            leaving it out means "everything", an empty one must not mean the same.
    """
    if text is None:
        return ()
    parts = tuple(part.strip() for part in text.split(",") if part.strip())
    if not parts and option is not None:
        raise ConfigError(f"{option} is empty ({text!r}); give at least one value, or leave "
                          f"{option} out to select the whole collection")
    return parts


@dataclass(frozen=True)
class DownloadConfig:
    """What ``detect download`` fetches, from where, into which folder.

    ``patients`` and ``letters`` are exclusive; both empty selects the whole collection.
    ``index`` is the IDC index parquet to read (None: the one idc-index-data installed).
    ``dicomweb``: fetch from that DICOMweb server instead of IDC, the series of
    ``studies`` and of ``patients`` (at least one of them; ``collection`` names the top
    folder, SR means every SR series of those studies).
    """

    out: Path
    collection: str = DEFAULT_COLLECTION
    patients: tuple[str, ...] = ()
    letters: tuple[str, ...] = ()
    modalities: tuple[str, ...] = DEFAULT_MODALITIES
    dry_run: bool = False
    endpoint: str = DEFAULT_ENDPOINT
    index: Path | None = None
    dicomweb: ServerConfig | None = None
    studies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.dicomweb is None and self.studies:
            raise ConfigError("--study selects on a DICOMweb server: pass --dicomweb URL too "
                              "(IDC downloads select by --patients or --letters)")
        if self.dicomweb is not None:
            if self.letters:
                raise ConfigError("--letters selects from the IDC index; a DICOMweb server is "
                                  "asked by --study or --patient")
            if not (self.studies or self.patients):
                raise ConfigError("--dicomweb needs --study or --patient (detect never "
                                  "downloads a whole archive)")
            object.__setattr__(self, "studies", tuple(dict.fromkeys(
                check_uid("--study", s) for s in self.studies)))
        try:
            check_collection(self.collection)
        except UnsafeValue as exc:
            raise ConfigError(f"--collection: {exc}") from None
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"OUT must be a folder, got the file {self.out}")
        if self.patients and self.letters:
            raise ConfigError("give --patients or --letters, not both")
        object.__setattr__(self, "patients", self._checked_patients())
        object.__setattr__(self, "letters", self._checked_letters())
        object.__setattr__(self, "modalities", self._checked_modalities())
        self._check_endpoint()
        if self.index is not None and not self.index.is_file():
            raise ConfigError(f"IDC index file not found: {self.index}")

    def _checked_patients(self) -> tuple[str, ...]:
        checked = []
        for patient in self.patients:
            if self.collection == "lung_pet_ct_dx" and _SHORT_LUNG_DX_ID.fullmatch(patient):
                patient = f"Lung_Dx-{patient[0].upper()}{patient[1:]}"
            try:
                checked.append(check_patient_id(patient))
            except UnsafeValue as exc:
                raise ConfigError(f"--patients: {exc}") from None
        return tuple(dict.fromkeys(checked))

    def _checked_letters(self) -> tuple[str, ...]:
        if not self.letters:
            return ()
        if self.collection not in LETTER_COLLECTIONS:
            raise ConfigError(
                f"--letters selects by the histology letter in Lung-PET-CT-Dx patient IDs; "
                f"collection {self.collection!r} has none (use --patients)"
            )
        letters = tuple(dict.fromkeys(letter.upper() for letter in self.letters))
        unknown = [letter for letter in letters if letter not in LETTERS]
        if unknown:
            raise ConfigError(
                f"--letters takes {','.join(LETTERS)}, got {','.join(unknown)}"
            )
        return letters

    def _checked_modalities(self) -> tuple[str, ...]:
        modalities = tuple(dict.fromkeys(m.upper() for m in self.modalities))
        unknown = [m for m in modalities if m not in MODALITIES]
        if not modalities or unknown:
            raise ConfigError(
                f"--modality takes one or more of {','.join(MODALITIES)}, "
                f"got {','.join(self.modalities) or 'nothing'}"
            )
        if "SR" in modalities and self.collection not in BOX_RESULTS and not self.dicomweb:
            raise ConfigError(
                f"--modality SR means the tumour boxes IDC publishes as DICOM SR, known for "
                f"{', '.join(BOX_RESULTS)}; not for collection {self.collection!r}"
            )
        return modalities

    def _check_endpoint(self) -> None:
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname or any(
            ch.isspace() for ch in self.endpoint
        ):
            raise ConfigError(
                f"--endpoint must be an http(s) URL like {DEFAULT_ENDPOINT} or "
                f"http://127.0.0.1:9000, got {self.endpoint!r}"
            )

    @property
    def box_result(self) -> str | None:
        """The analysis result id of this collection's SR boxes (None: none known)."""
        return BOX_RESULTS.get(self.collection)
