"""Helpers of the download tests: IDC-like index files, tiny DICOM, a local S3 bucket."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

BUCKET = "idc-open-data"
SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
    "SR": "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR, as IDC's boxes
}
INDEX_COLUMNS = {
    "collection_id": "VARCHAR", "analysis_result_id": "VARCHAR", "PatientID": "VARCHAR",
    "StudyInstanceUID": "VARCHAR", "SeriesInstanceUID": "VARCHAR", "Modality": "VARCHAR",
    "instanceCount": "BIGINT", "series_size_MB": "DOUBLE", "series_aws_url": "VARCHAR",
}

@dataclass
class LocalS3:
    """A moto S3 server on 127.0.0.1 and a client for filling it."""

    endpoint: str
    client: Any

    def put_series(
        self, source_url: str, files: Iterable[bytes], *, public: bool = True
    ) -> list[str]:
        """Put ``files`` where IDC keeps a series: ``<uuid>/<crdc_instance_uuid>.dcm``.
        ``public``: readable without signing, as IDC's buckets are."""
        bucket, prefix = source_url.removeprefix("s3://").removesuffix("/*").split("/")
        keys = []
        for data in files:
            key = f"{prefix}/{uuid.uuid4()}.dcm"
            extra = {"ACL": "public-read"} if public else {}
            self.client.put_object(Bucket=bucket, Key=key, Body=data, **extra)
            keys.append(key)
        return keys


def tiny_dicom(
    *, patient_id: str, study_uid: str, series_uid: str, modality: str, number: int
) -> bytes:
    """A small valid DICOM instance of ``modality`` (CT and PT with 4x4 pixels)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASSES[modality]
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient_id, study_uid, series_uid
    ds.Modality, ds.InstanceNumber = modality, number
    if modality in ("CT", "PT"):
        ds.ImagePositionPatient = [0.0, 0.0, -5.0 * number]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.7, 0.7]
        ds.Rows = ds.Columns = 4
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = np.full((4, 4), 1024 + number, np.uint16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def series_files(entry: Any, count: int | None = None) -> list[bytes]:
    """Tiny instances for a selected series (``entry``: a SeriesEntry)."""
    return [
        tiny_dicom(patient_id=entry.patient_id, study_uid=entry.study_uid,
                   series_uid=entry.series_uid, modality=entry.modality, number=k + 1)
        for k in range(entry.instances if count is None else count)
    ]


def index_row(
    patient_id: str, study_uid: str, series_uid: str, modality: str, instances: int,
    *, size_mb: float = 0.001, collection: str = "lung_pet_ct_dx",
    analysis_result_id: str | None = None, source_url: str | None = None,
) -> dict[str, Any]:
    """One row of an IDC-like index (the columns detect reads)."""
    if modality == "SR" and analysis_result_id is None:
        analysis_result_id = "lung_pet_ct_dx_annotations"
    return {
        "collection_id": collection, "analysis_result_id": analysis_result_id,
        "PatientID": patient_id, "StudyInstanceUID": study_uid,
        "SeriesInstanceUID": series_uid, "Modality": modality, "instanceCount": instances,
        "series_size_MB": size_mb,
        "series_aws_url": source_url or f"s3://{BUCKET}/{uuid.uuid4()}/*",
    }


def write_index(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as a parquet file laid out like idc-index-data's index."""
    import duckdb

    with duckdb.connect() as con:
        con.execute("CREATE TABLE idx (" + ", ".join(
            f"{name} {kind}" for name, kind in INDEX_COLUMNS.items()) + ")")
        con.executemany(
            f"INSERT INTO idx VALUES ({', '.join('?' * len(INDEX_COLUMNS))})",
            [[row[name] for name in INDEX_COLUMNS] for row in rows],
        )
        con.execute("COPY idx TO ? (FORMAT PARQUET)", [str(path)])
    return path


def tree_files(root: Path) -> set[str]:
    """Every path under ``root`` (files and folders), relative, as posix strings."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}
