"""Hand-made DICOM SRs for the SR reader and converter tests: a tiny CT series, its
IDC-style SR (detect.io.idc_sr), the parts of it a test breaks, and raw hostile files."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from detect.io.idc_sr import VocBox, build_idc_sr

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"


def ct_series(
    folder: Path, *, count: int = 3, size: int = 64, patient_id: str = "Lung_Dx-A0001",
    series_number: int = 2,
) -> list[Path]:
    """``count`` CT slices of one series (z = -5 mm x instance number: the last instance
    is the lowest slice), written as ``ct<k>.dcm``; returns their paths, instance order."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    paths = []
    for k in range(1, count + 1):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_STORAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CT_STORAGE, meta.MediaStorageSOPInstanceUID
        ds.PatientID, ds.PatientName = patient_id, patient_id
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", series_number, k
        ds.ImagePositionPatient = [0.0, 0.0, -5.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.7, 0.7]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = np.full((size, size), 1024, np.uint16).tobytes()
        path = folder / f"ct{k}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def sop_of(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def idc_sr(series: Sequence[Path], boxes: Sequence[tuple[int, str, tuple[float, ...]]]) -> Dataset:
    """The IDC-style SR of ``series`` with ``boxes`` = (slice index in ``series``, XML
    object name, xyxy)."""
    return build_idc_sr(
        series,
        [VocBox(sop_of(series[i]), name, tuple(float(v) for v in xyxy))  # type: ignore[arg-type]
         for i, name, xyxy in boxes],
    )


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def groups(ds: Dataset) -> list[Dataset]:
    """The measurement groups of an SR (to break them in place)."""
    for item in ds.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue == "126010":
            return list(item.ContentSequence)
    raise AssertionError("no Imaging Measurements container")


def child(group: Dataset, code_value: str) -> Dataset:
    """The content item of ``group`` whose concept name has ``code_value``."""
    for item in group.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue == code_value:
            return item
    raise AssertionError(f"no item {code_value}")


def region(group: Dataset) -> Dataset:
    return child(group, "111030")


def finding(group: Dataset) -> Dataset:
    """The finding type's code (ConceptCodeSequence item) of a group."""
    return child(group, "121071").ConceptCodeSequence[0]


def sr_header_bytes(*, transfer_syntax: str = ExplicitVRLittleEndian) -> bytes:
    """A minimal SR file (meta + identity, no content) to append raw elements to."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = COMPREHENSIVE_3D_SR
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = COMPREHENSIVE_3D_SR, meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def many_items_sr(path: Path, items: int) -> Path:
    """An SR whose ContentSequence holds ``items`` empty items (8 bytes each), written as
    raw bytes (pydicom needs minutes to write or parse a million of them)."""
    body = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" * items
    element = b"\x40\x00\x30\xa7SQ\x00\x00" + len(body).to_bytes(4, "little") + body
    path.write_bytes(sr_header_bytes() + element)
    return path


def write_idc_srs_for(dicom_root: Path, annotation_root: Path, out: Path) -> list[Path]:
    """IDC-style SRs of a tree's XML boxes (what tools/make_idc_sr.py does): one per
    annotated series under ``out``; returns the files."""
    from detect.convert.index import build_index
    from detect.io.idc_sr import SliceRef, write_idc_srs

    index = build_index(dicom_root, workers=2)
    refs = {}
    for series_uid, slices in index.series().items():
        files = tuple(h.path for h in slices)
        for header in slices:
            refs[header.sop_instance_uid] = SliceRef(series_uid, header.patient_id, files)
    result = write_idc_srs(annotation_root, refs, out)
    assert not result.skipped, result.skipped
    return result.written


def boxes_by_slice(dataset: Path) -> dict[str, dict]:
    """SOPInstanceUID → what a converted dataset holds for that slice: split, image name,
    histology, source files, and its COCO boxes [x, y, w, h] (px) in coordinate order."""
    import json

    out: dict[str, dict] = {}
    for split in ("train", "val", "test"):
        coco = json.loads((dataset / "coco" / f"{split}.json").read_text())
        boxes: dict[int, list] = {}
        for ann in coco["annotations"]:
            boxes.setdefault(ann["image_id"], []).append((ann["bbox"], ann["histology"]))
        for image in coco["images"]:
            out[image["sop_instance_uid"]] = {
                "split": split,
                "file_name": image["file_name"],
                "histology": image["histology"],
                "source_xml": image["source_xml"],
                "source_sr": image["source_sr"],
                "boxes": sorted(boxes.get(image["id"], [])),
            }
    return out


def assert_same_boxes(got: dict[str, dict], want: dict[str, dict], *, atol: float = 1e-3) -> int:
    """The two datasets hold the same images (paired by SOPInstanceUID) in the same splits
    under the same names, with the same boxes box by box; returns the number of boxes."""
    assert sorted(got) == sorted(want)
    count = 0
    for sop, expected in want.items():
        actual = got[sop]
        for key in ("split", "file_name", "histology"):
            assert actual[key] == expected[key], (sop, key)
        assert len(actual["boxes"]) == len(expected["boxes"]), sop
        for (box, letter), (want_box, want_letter) in zip(actual["boxes"], expected["boxes"]):
            assert letter == want_letter, sop
            np.testing.assert_allclose(box, want_box, atol=atol, err_msg=sop)
            count += 1
    return count
