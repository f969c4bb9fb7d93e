"""The lung field of every CT series under a DICOM root, and where each annotation box of
the archive's layout (``<ann>/<patient>/<SOPInstanceUID>.xml``) falls in it: the same
functions ``detect predict`` uses (headers, HU, per-slice air, the 3D pass)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from detect.io.dicom import read_hu
from detect.io.geometry import series_geometry
from detect.io.voc import VocObject, parse_voc, voc_xml_bytes
from detect.lung import LungFieldRule, air_inside_body, block_size, build_lung_field, pixel_size
from detect.predict.sources import scan_sources


@dataclass(frozen=True)
class BoxInField:
    """One annotation box: where it is, and the fraction of it inside the lung field."""

    patient_id: str
    series_description: str
    slice_index: int
    sop_instance_uid: str
    xyxy: tuple[float, float, float, float]
    fraction: float


def boxes_in_field(dicom_root: Path, annotation_root: Path,
                   rule: LungFieldRule | None = None) -> list[BoxInField]:
    """Every box of every XML under ``annotation_root`` whose slice is under
    ``dicom_root``, with its fraction inside its series' lung field."""
    rule = rule or LungFieldRule()
    boxes = {xml.stem: [o.xyxy for o in parse_voc(xml).objects]
             for xml in annotation_root.rglob("*.xml")}
    found = []
    for series in scan_sources([dicom_root]).series:
        if not any(h.sop_instance_uid in boxes for h in series.slices):
            continue
        geometry = series_geometry(series.slices)
        pixel_mm = pixel_size(geometry.pixel_mm)
        block = block_size(pixel_mm, rule.grid_mm)
        air = [air_inside_body(read_hu(h.path), air_hu=rule.air_hu, block=block)
               for h in series.slices]
        field = build_lung_field(air, pixel_mm=pixel_mm, block=block,
                                 positions_mm=geometry.positions_mm, rule=rule)
        for index, header in enumerate(series.slices):
            for xyxy in boxes.get(header.sop_instance_uid, []):
                found.append(BoxInField(header.patient_id, series.description, index,
                                        header.sop_instance_uid, xyxy,
                                        field.box_fraction(index, xyxy)))
    return found


#: The drawn chest: 256 px of 1.5 mm, two lungs (centre, half-axes in px).
CHEST_SIZE, CHEST_PIXEL_MM = 256, 1.5
RIGHT_LUNG, LEFT_LUNG = ((80, 128), (34, 60)), ((176, 128), (34, 60))


def chest_hu(slices: int, lung_slices: Sequence[int], gas_slices: Sequence[int] = ()
             ) -> list[np.ndarray]:
    """HU slices: air outside (-1000), a soft-tissue body ellipse (40), two lungs (-850)
    on ``lung_slices``, a gas bubble (-900) under the left lung on ``gas_slices``, and a
    couch (air below and above it is outside the body)."""
    volume = []
    for k in range(slices):
        hu = np.full((CHEST_SIZE, CHEST_SIZE), -1000.0, np.float32)
        cv2.ellipse(hu, (128, 128), (118, 90), 0, 0, 360, 40.0, -1)
        if k in lung_slices:
            for centre, axes in (RIGHT_LUNG, LEFT_LUNG):
                cv2.ellipse(hu, centre, axes, 0, 0, 360, -850.0, -1)
        if k in gas_slices:
            cv2.circle(hu, (170, 110), 12, -900.0, -1)
        hu[235:240, 10:246] = 150.0
        volume.append(hu)
    return volume


def write_chest_series(dicom_root: Path, annotation_root: Path, *, patient: str,
                       slices: int, lung_slices: Sequence[int], boxed: Sequence[int],
                       spacing_mm: float = 5.0) -> list[str]:
    """The drawn chest as one CT series (``Lung_Dx-<patient>``) and a VOC box (letter of
    the patient, in the right lung) on each slice of ``boxed``; returns the SOP UIDs in
    slice order (feet to head)."""
    folder = dicom_root / f"Lung_Dx-{patient}" / "study" / "series"
    folder.mkdir(parents=True, exist_ok=True)
    (annotation_root / patient).mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    uids = []
    for k, hu in enumerate(chest_hu(slices, lung_slices)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientID, ds.Modality = f"Lung_Dx-{patient}", "CT"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0.0, 0.0, spacing_mm * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [CHEST_PIXEL_MM, CHEST_PIXEL_MM]
        ds.Rows, ds.Columns = hu.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = np.rint(hu + 1024).astype(np.uint16).tobytes()
        ds.save_as(folder / f"1-{k + 1:02d}.dcm", enforce_file_format=True)
        uids.append(str(ds.SOPInstanceUID))
        if k in boxed:
            xml = voc_xml_bytes([VocObject(name=patient[0], xyxy=(70.0, 110.0, 90.0, 130.0))],
                                CHEST_SIZE, CHEST_SIZE, 1)
            (annotation_root / patient / f"{ds.SOPInstanceUID}.xml").write_bytes(xml)
    return uids
