"""A phantom cohort in the exact layout of the TCIA Lung-PET-CT-Dx download.

``synthesize(OUT, SynthConfig(...))`` writes::

    OUT/Lung-PET-CT-Dx/Lung_Dx-A0001/<study>/<series>/1-NN.dcm   (see detect.synth.dicom)
    OUT/Annotation/A0001/<SOPInstanceUID>.xml                     (LabelImg-style VOC)
    OUT/metadata.csv     one row per series, the columns of the NBIA download manifest
    OUT/synth.json       the ground truth: lesions (centre mm/px, radii, slices), every
                         CT slice, every XML with its exact box, storage, counts

Patients: ``<letter><NNNN>``, numbered per letter. Letters follow ``letter_mix`` (default
the real collection, A 251 : B 38 : E 5 : G 61) by largest remainders; when there are at
least 4 patients, every letter with a positive weight gets at least one patient, taken
from the letter most over its share. With the default mix, 12 patients are 8 A, 1 B,
1 E and 2 G.

Storage, by position ``k`` in the cohort (A0001 first, then B..., E..., G...), unless
forced: signed int16 (intercept 0) when ``k % 4 == 3``, else unsigned (12 bits,
intercept -1024); with ``compression="mixed"``, RLE Lossless when ``k % 6 == 2`` and
JPEG 2000 Lossless (slow to encode) when ``k % 12 == 5``, else Explicit VR Little
Endian. Slice ordering cycles through ``detect.synth.patient.ORDERINGS`` with ``k % 4``.
The same seed gives byte-identical files; no clock is read.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from detect import __version__
from detect.errors import ConfigError
from detect.histology import LETTERS
from detect.io.csvfile import write_csv
from detect.io.write_errors import output_errors
from detect.synth.dicom import SOP_CLASS_NAMES, TRANSFER_SYNTAXES, nbia_text
from detect.synth.patient import ORDERINGS, Options, PatientPlan, PatientWriter
from detect.synth.records import PatientRecord, patient_detail, patient_record

log = logging.getLogger(__name__)

COLLECTION = "Lung-PET-CT-Dx"
DEFAULT_LETTER_MIX: Mapping[str, int] = {"A": 251, "B": 38, "E": 5, "G": 61}
LAYOUTS = ("tcia", "uid")
COMPRESSIONS = ("none", "mixed", "rle", "j2k")
STORAGES = ("mixed", "unsigned", "signed")
_MANIFEST_COLUMNS = (
    "Series UID",
    "Collection",
    "3rd Party Analysis",
    "Data Description URI",
    "Subject ID",
    "Study UID",
    "Study Description",
    "Study Date",
    "Series Description",
    "Manufacturer",
    "Modality",
    "SOP Class Name",
    "SOP Class UID",
    "Number of Images",
    "File Size",
    "File Location",
    "Download Timestamp",
)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer from {low} to {high}, got {value!r}")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


@dataclass(frozen=True)
class SynthConfig:
    """Options of ``detect synth`` (validated on construction; raises ConfigError).

    ``compression``: ``none`` | ``mixed`` | ``rle`` | ``j2k`` (the last two: every
    patient). ``storage``: ``mixed`` | ``unsigned`` | ``signed`` (the last two: every
    patient). ``letter_mix``: relative weights of A, B, E, G (missing letters weigh 0).
    """

    patients: int = 12
    slices: int = 40
    size: int = 512
    seed: int = 0
    letter_mix: Mapping[str, int] | None = None
    pet: bool = False
    fused: bool = True
    layout: str = "tcia"
    compression: str = "mixed"
    storage: str = "mixed"

    def __post_init__(self) -> None:
        _check_int("patients", self.patients, 1, 9999)
        _check_int("slices", self.slices, 4, 2000)
        _check_int("size", self.size, 32, 2048)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_choice("layout", self.layout, LAYOUTS)
        _check_choice("compression", self.compression, COMPRESSIONS)
        _check_choice("storage", self.storage, STORAGES)
        if self.letter_mix is not None:
            object.__setattr__(self, "letter_mix", _checked_mix(self.letter_mix))

    @property
    def mix(self) -> dict[str, int]:
        """The letter weights in use, every letter present (0 for none)."""
        mix = self.letter_mix if self.letter_mix is not None else DEFAULT_LETTER_MIX
        return {letter: int(mix.get(letter, 0)) for letter in LETTERS}


def _checked_mix(mix: Mapping[str, int]) -> dict[str, int]:
    try:
        items = {str(k).strip().upper(): v for k, v in dict(mix).items()}
    except (TypeError, ValueError):
        raise ConfigError(f"letter_mix must map letters to counts, got {mix!r}") from None
    unknown = sorted(set(items) - set(LETTERS))
    if unknown:
        raise ConfigError(
            f"letter_mix keys must be among {', '.join(LETTERS)}, got {unknown}"
        )
    bad = {k: v for k, v in items.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0}
    if bad or sum(items.values()) <= 0:
        raise ConfigError(
            f"letter_mix weights must be integers >= 0 with a positive sum, got {dict(mix)!r}"
        )
    return {letter: items.get(letter, 0) for letter in LETTERS}


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`synthesize` wrote. ``counts`` as in synth.json."""

    out: Path
    dicom_root: Path
    annotation_root: Path
    manifest: Path
    metadata_csv: Path
    patients: tuple[PatientRecord, ...]
    counts: Mapping[str, Any]


def letter_counts(patients: int, mix: Mapping[str, int]) -> dict[str, int]:
    """Patients per letter for a cohort of ``patients`` (rule in the module doc)."""
    letters = [letter for letter in LETTERS if mix.get(letter, 0) > 0]
    total = sum(mix[letter] for letter in letters)
    quota = {letter: patients * mix[letter] / total for letter in letters}
    counts = {letter: math.floor(quota[letter]) for letter in letters}
    by_remainder = sorted(letters, key=lambda x: (counts[x] - quota[x], LETTERS.index(x)))
    for letter in by_remainder[: patients - sum(counts.values())]:
        counts[letter] += 1
    if patients >= 4:
        for letter in letters:
            if counts[letter] == 0:
                donor = max(
                    (x for x in letters if counts[x] > 1),
                    key=lambda x: (counts[x] - quota[x], -LETTERS.index(x)),
                )
                counts[donor] -= 1
                counts[letter] = 1
    return {letter: counts.get(letter, 0) for letter in LETTERS}


def plan_cohort(config: SynthConfig) -> list[PatientPlan]:
    """Every patient's ID, letter, storage, transfer syntax and slice ordering."""
    plans: list[PatientPlan] = []
    counts = letter_counts(config.patients, config.mix)
    for letter in LETTERS:
        for number in range(1, counts[letter] + 1):
            k = len(plans)
            storage = config.storage
            if storage == "mixed":
                storage = "signed" if k % 4 == 3 else "unsigned"
            syntax = {"none": "explicit", "rle": "rle", "j2k": "j2k"}.get(config.compression)
            if syntax is None:
                syntax = "j2k" if k % 12 == 5 else "rle" if k % 6 == 2 else "explicit"
            plans.append(
                PatientPlan(k, f"{letter}{number:04d}", letter, storage, syntax, ORDERINGS[k % 4])
            )
    return plans


def _check_out(out: Path) -> None:
    taken = [
        name
        for name in (COLLECTION, "Annotation", "synth.json", "metadata.csv")
        if (out / name).exists()
    ]
    if taken:
        raise ConfigError(
            f"output folder {out} already holds {', '.join(taken)}; expected a new or empty "
            f"folder: choose another OUT or delete those"
        )
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {out} is a file; expected a folder")


def synthesize(
    out: Path, config: SynthConfig, progress: Callable[[int, int], None] | None = None
) -> SynthSummary:
    """Write a phantom cohort into ``out`` (see the module doc for what and where).

    ``progress(done, total)`` is called with patients done, before the first and after each.

    Raises:
        ConfigError: ``out`` already holds a cohort, or is a file.
        OutputFolderError: ``out`` cannot be written (disk full, read-only, no permission).
    """
    out = Path(out)
    _check_out(out)
    with output_errors(out):
        return _synthesize(out, config, progress)


def _synthesize(
    out: Path, config: SynthConfig, progress: Callable[[int, int], None] | None
) -> SynthSummary:
    options = Options(
        seed=config.seed,
        size=config.size,
        slices=config.slices,
        layout=config.layout,
        fused=config.fused,
        pet=config.pet,
        dicom_root=out / COLLECTION,
        annotation_root=out / "Annotation",
    )
    options.dicom_root.mkdir(parents=True, exist_ok=True)
    options.annotation_root.mkdir(parents=True, exist_ok=True)
    records, details, rows = _write_patients(plan_cohort(config), options, out, progress)
    counts = _counts(records)
    manifest, metadata_csv = out / "synth.json", out / "metadata.csv"
    _write_json(manifest, config, counts, details)
    _write_csv(metadata_csv, rows)
    return SynthSummary(
        out=out,
        dicom_root=options.dicom_root,
        annotation_root=options.annotation_root,
        manifest=manifest,
        metadata_csv=metadata_csv,
        patients=tuple(records),
        counts=counts,
    )


def _write_patients(
    plans: list[PatientPlan],
    options: Options,
    out: Path,
    progress: Callable[[int, int], None] | None,
) -> tuple[list[PatientRecord], list[dict[str, Any]], list[dict[str, str]]]:
    """Write every patient; returns their records, synth.json entries, manifest rows."""
    records: list[PatientRecord] = []
    details: list[dict[str, Any]] = []
    rows: list[dict[str, str]] = []
    if progress is not None:
        progress(0, len(plans))
    for done, plan in enumerate(plans, start=1):
        writer = PatientWriter(plan, options)
        writer.run()
        record = patient_record(writer)
        records.append(record)
        details.append(patient_detail(writer, record))
        rows.extend(_manifest_rows(writer, out, len(rows)))
        log.info(
            "synth %s: %d CT slices, %d XMLs on CT, %d on fused",
            plan.patient_id,
            record.ct_slices,
            record.xml_ct,
            record.xml_fused,
        )
        if progress is not None:
            progress(done, len(plans))
    return records, details, rows


def _counts(records: list[PatientRecord]) -> dict[str, Any]:
    def tally(values: list[str]) -> dict[str, int]:
        return {v: values.count(v) for v in sorted(set(values))}

    ct = sum(r.ct_slices for r in records)
    xml_ct = sum(r.xml_ct for r in records)
    xml_fused = sum(r.xml_fused for r in records)
    return {
        "patients": len(records),
        "letters": {x: sum(r.letter == x for r in records) for x in LETTERS},
        "ct_slices": ct,
        "fused_images": sum(r.fused_images for r in records),
        "pet_slices": sum(r.pet_slices for r in records),
        "xml_ct": xml_ct,
        "xml_fused": xml_fused,
        "xml": xml_ct + xml_fused,
        "objects": sum(r.objects for r in records),
        "annotated_ct_fraction": round(xml_ct / ct, 4) if ct else 0.0,
        "storage": tally([r.storage for r in records]),
        "transfer_syntax": tally([r.transfer_syntax_name for r in records]),
        "orderings": tally([r.ordering for r in records]),
    }


def _manifest_rows(writer: PatientWriter, out: Path, first: int) -> list[dict[str, str]]:
    """metadata.csv rows (the NBIA manifest's columns) for the patient's series."""
    written, study = writer.written, writer.study
    date = f"{study.date[4:6]}-{study.date[6:8]}-{study.date[0:4]}"
    rows: list[dict[str, str]] = []
    for kind, modality, sop_class in writer.series_kinds():
        if written.files[kind] == 0:
            continue
        folder = writer.series_dir(kind).relative_to(out).as_posix()
        stamp = datetime(2024, 1, 2, 3, 4, 5) + timedelta(seconds=7.25 * (first + len(rows)))
        values = (
            writer.series[kind].uid,
            COLLECTION,
            "null",
            "synthetic phantom (detect synth)",
            study.patient_id,
            study.study_uid,
            nbia_text(study.description),
            date,
            nbia_text(writer.series[kind].description),
            study.manufacturer,
            modality,
            SOP_CLASS_NAMES[sop_class],
            str(sop_class),
            str(written.files[kind]),
            f"{written.bytes[kind] / 1e6:.2f} MB",
            f"./{folder}",
            stamp.isoformat(timespec="milliseconds"),
        )
        rows.append(dict(zip(_MANIFEST_COLUMNS, values)))
    return rows


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    write_csv(path, _MANIFEST_COLUMNS, rows)


def _write_json(
    path: Path, config: SynthConfig, counts: Mapping[str, Any], details: list[dict[str, Any]]
) -> None:
    settings = asdict(config)
    settings["letter_mix"] = config.mix
    document = {
        "format": "detect-synth",
        "version": 1,
        "generator": f"detect {__version__}",
        "config": settings,
        "dicom_root": COLLECTION,
        "annotation_root": "Annotation",
        "metadata_csv": "metadata.csv",
        "transfer_syntaxes": {name: str(uid) for name, uid in TRANSFER_SYNTAXES.items()},
        "counts": counts,
        "patients": details,
    }
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
