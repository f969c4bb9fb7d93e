"""A skeleton of a whole IDC collection (Lung-PET-CT-Dx by default), for scale benchmarks.

Every patient, study and series of the collection in IDC's offline index (idc-index-data,
read with DuckDB), with its real instance count, modality, photometric interpretation
(RGB = the fused PET/CT screenshots) and descriptions, written in the TCIA/NBIA layout
(``Lung-PET-CT-Dx/Lung_Dx-<L><NNNN>/<study>/<series>/1-NNN.dcm``) at a small matrix
(64 x 64 by default) so that the collection's ~251,000 files fit on a laptop disk (about
3 GB). About one slice in eight of every CT series (grey and RGB) carries a box: a
contiguous span in the middle of the series, with a VOC XML in
``Annotation/<L><NNNN>/<SOPInstanceUID>.xml`` (the archive's own layout), the letter of
the patient ID. Pixels are a simple chest (body, lungs, a nodule where the box is), the
same for every slice of a series: this is a cohort to measure reading, indexing and
writing at scale, not to learn from.

Deterministic: the same index and options give the same files (SOP UIDs are derived from
the series UID and the instance number).

usage: python tools/benchmarks/skeleton.py OUT [--patients N] [--size 64] [--workers 2]
       [--modality CT,PT]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import generate_uid

COLLECTION = "lung_pet_ct_dx"
COLUMNS = ("PatientID", "StudyInstanceUID", "StudyDate", "StudyDescription",
           "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Modality",
           "PhotometricInterpretation", "Manufacturer", "instanceCount")
ANNOTATED_FRACTION = 1 / 8


@dataclass(frozen=True)
class SeriesRow:
    patient: str
    study_uid: str
    study_date: str
    study_description: str
    series_uid: str
    number: int
    description: str
    modality: str
    rgb: bool
    manufacturer: str
    instances: int


def index_rows(collection: str, modalities: Sequence[str]) -> list[SeriesRow]:
    """The collection's image series (no analysis results) from the offline IDC index."""
    import duckdb
    import idc_index_data

    query = f"""SELECT {", ".join(COLUMNS)} FROM read_parquet(?)
                WHERE collection_id = ? AND analysis_result_id IS NULL
                  AND Modality IN ({", ".join("?" for _ in modalities)})
                ORDER BY PatientID, StudyInstanceUID, SeriesInstanceUID"""
    with duckdb.connect() as connection:
        index = str(idc_index_data.IDC_INDEX_PARQUET_FILEPATH)
        rows = connection.execute(query, [index, collection, *modalities]).fetchall()
    out = []
    for row in rows:
        value = dict(zip(COLUMNS, row))
        out.append(SeriesRow(
            patient=str(value["PatientID"]), study_uid=str(value["StudyInstanceUID"]),
            study_date=str(value["StudyDate"] or "2008-01-01").replace("-", "")[:8],
            study_description=str(value["StudyDescription"] or ""),
            series_uid=str(value["SeriesInstanceUID"]), number=int(value["SeriesNumber"] or 1),
            description=str(value["SeriesDescription"] or ""), modality=str(value["Modality"]),
            rgb=str(value["PhotometricInterpretation"] or "").upper().startswith("RGB"),
            manufacturer=str(value["Manufacturer"] or ""), instances=int(value["instanceCount"]),
        ))
    return out


def chest_hu(size: int, nodule: tuple[int, int, int] | None) -> np.ndarray:
    """A small chest in HU: air, body, two lungs, and a nodule (cx, cy, r px) if given."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    c = size / 2.0
    hu = np.full((size, size), -1000.0, np.float32)
    hu[((x - c) / (0.45 * size)) ** 2 + ((y - c) / (0.35 * size)) ** 2 <= 1] = 40.0
    for side in (-1, 1):
        lung = ((x - c - side * 0.2 * size) / (0.15 * size)) ** 2 + ((y - c) / (0.25 * size)) ** 2
        hu[lung <= 1] = -850.0
    if nodule is not None:
        cx, cy, r = nodule
        hu[(x - cx) ** 2 + (y - cy) ** 2 <= r * r] = 30.0
    return hu


def _study_info(row: SeriesRow) -> Any:
    from detect.synth.dicom import StudyInfo

    return StudyInfo(patient_id=row.patient, sex="M", age="060Y", weight_kg=70.0,
                     study_uid=row.study_uid, frame_uid=generate_uid(entropy_srcs=[row.study_uid]),
                     date=row.study_date, time="100000.000000",
                     description=row.study_description, manufacturer=row.manufacturer,
                     model="skeleton", kernel="B40f")


#: Fixed-width placeholders written into one template file per series and replaced per
#: instance (same byte length, so every element length and the group length stay right):
#: files cost a few bytes.replace calls instead of a pydicom encode each.
_UID_DIGITS = 38
_PLACE_UID = "2.25." + "9" * _UID_DIGITS
_PLACE_NUMBER = "999999"
_PLACE_Z = "-99999.99"


def instance_uid(series_uid: str, index: int) -> str:
    """A deterministic, fixed-length SOP Instance UID for instance ``index`` of a series."""
    digest = hashlib.sha1(f"{series_uid}/{index}".encode()).hexdigest()
    # a UID component has no leading zero: "1" then 37 digits
    return f"2.25.1{int(digest, 16) % 10 ** (_UID_DIGITS - 1):0{_UID_DIGITS - 1}d}"


def _template(row: SeriesRow, size: int, annotated: bool) -> bytes:
    from detect.synth.dicom import SeriesInfo, ct_dataset, fused_dataset, pet_dataset

    study = _study_info(row)
    series = SeriesInfo(row.series_uid, row.number, row.description, "100000.000000")
    plain = chest_hu(size, None)
    if row.modality == "PT":
        ds = pet_dataset(study, series, sop_uid=_PLACE_UID, instance=1, count=row.instances,
                         position=(0.0, 0.0, 0.0), spacing_mm=8.0, thickness_mm=5.0,
                         bqml=(plain + 1000.0) * 10.0, injection_time="090000")
    elif row.rgb:
        grey = ((plain + 1000) / 1100 * 255).clip(0, 255).astype(np.uint8)
        ds = fused_dataset(study, series, sop_uid=_PLACE_UID, instance=1,
                           rgb=np.repeat(grey[..., None], 3, axis=2))
    else:
        hu = chest_hu(size, _nodule(size)) if annotated else plain
        signed = row.manufacturer.upper().startswith("GE")
        ds = ct_dataset(study, series, sop_uid=_PLACE_UID, instance=1, position=(0.0, 0.0, 0.0),
                        spacing_mm=8.0, thickness_mm=5.0, hu=hu, signed=signed)
    ds.InstanceNumber = _PLACE_NUMBER
    if "ImagePositionPatient" in ds:
        ds.ImagePositionPatient = ["0", "0", _PLACE_Z]
        ds.SliceLocation = _PLACE_Z
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _nodule(size: int) -> tuple[int, int, int]:
    return int(size * 0.3), int(size * 0.5), max(2, size // 12)


def write_series(out: Path, row: SeriesRow, size: int) -> dict[str, int]:
    """One series' files (and its XMLs); returns counts."""
    from detect.histology import short_patient_id
    from detect.io.voc import VocObject, voc_xml_bytes
    from detect.synth.dicom import file_name, series_folder, study_folder

    folder = (out / "Lung-PET-CT-Dx" / row.patient
              / study_folder(row.study_date, row.study_description, row.study_uid, "tcia")
              / series_folder(row.number, row.description, row.series_uid, "tcia"))
    folder.mkdir(parents=True, exist_ok=True)
    n = row.instances
    span = max(1, round(n * ANNOTATED_FRACTION)) if row.modality == "CT" else 0
    first = n // 2 - span // 2
    templates = {False: _template(row, size, False)}
    if span and not row.rgb:
        templates[True] = _template(row, size, True)
    cx, cy, r = _nodule(size)
    box = (float(cx - r), float(cy - r), float(cx + r + 1), float(cy + r + 1))
    short = short_patient_id(row.patient)
    notes = out / "Annotation" / short
    counts = {"files": 0, "xml": 0}
    for i in range(n):
        sop = instance_uid(row.series_uid, i)
        annotated = first <= i < first + span
        data = (templates[annotated and not row.rgb]
                .replace(_PLACE_UID.encode(), sop.encode())
                .replace(_PLACE_NUMBER.encode(), f"{i + 1:06d}".encode())
                .replace(_PLACE_Z.encode(), f"{-5.0 * i:09.2f}".encode()))
        (folder / file_name(i + 1, n, sop, "tcia")).write_bytes(data)
        counts["files"] += 1
        if annotated:
            notes.mkdir(parents=True, exist_ok=True)
            (notes / f"{sop}.xml").write_bytes(voc_xml_bytes(
                [VocObject(short[0], box)], size, size, 3 if row.rgb else 1))
            counts["xml"] += 1
    return counts


def _patient_job(args: tuple[Path, list[SeriesRow], int]) -> dict[str, int]:
    out, rows, size = args
    total = {"files": 0, "xml": 0, "series": 0}
    for row in rows:
        counts = write_series(out, row, size)
        total["files"] += counts["files"]
        total["xml"] += counts["xml"]
        total["series"] += 1
    return total


def build(out: Path, *, patients: int | None, size: int, workers: int,
          modalities: Sequence[str]) -> dict[str, Any]:
    """Write the skeleton into ``out``; returns what was written (also ``out/skeleton.json``)."""
    by_patient: dict[str, list[SeriesRow]] = defaultdict(list)
    for row in index_rows(COLLECTION, modalities):
        by_patient[row.patient].append(row)
    chosen = sorted(by_patient)[:patients] if patients else sorted(by_patient)
    start = time.perf_counter()
    jobs = [(out, by_patient[p], size) for p in chosen]
    totals = {"patients": len(chosen), "files": 0, "xml": 0, "series": 0}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for counts in pool.map(_patient_job, jobs, chunksize=4):
            for key in ("files", "xml", "series"):
                totals[key] += counts[key]
    record = {**totals, "size_px": size, "modalities": list(modalities),
              "seconds": round(time.perf_counter() - start, 1), "patients_list": chosen}
    (out / "skeleton.json").write_text(json.dumps(record, indent=1))
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--patients", type=int, default=None, help="first N patients (by ID)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--modality", default="CT,PT")
    args = parser.parse_args(argv)
    record = build(args.out, patients=args.patients, size=args.size, workers=args.workers,
                   modalities=[m.strip().upper() for m in args.modality.split(",") if m.strip()])
    print(f"{record['patients']} patients, {record['series']} series, {record['files']} files, "
          f"{record['xml']} XML in {record['seconds']} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
