"""The lung field of every CT series under a DICOM root, and where each annotation box of
the archive's layout (``<ann>/<patient>/<SOPInstanceUID>.xml``) falls in it: the same
functions ``detect predict`` uses (headers, HU, per-slice air, the 3D pass)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detect.io.dicom import read_hu
from detect.io.geometry import series_geometry
from detect.io.voc import parse_voc
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
