"""What synth.json and SynthSummary say about each phantom patient (the ground truth)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from detect.synth.dicom import TRANSFER_SYNTAXES

if TYPE_CHECKING:
    from detect.synth.patient import PatientWriter


@dataclass(frozen=True)
class LesionRecord:
    """One tumour. Positions: ``centre_mm`` patient LPS (mm); ``centre_px`` (column, row)
    on the CT grid, pixel centres at integers; slice indices count from the lowest z (the
    order of ``detect.io.slice_order.sort_slices``), ``centre_slice`` fractional.
    """

    letter: str
    kind: str
    centre_mm: tuple[float, float, float]
    centre_px: tuple[float, float]
    centre_slice: float
    radii_mm: tuple[float, float, float]
    diameter_mm: float
    nodes: int
    suv: float
    slices: tuple[int, ...]
    annotated_slices: tuple[int, ...]


@dataclass(frozen=True)
class PatientRecord:
    """One phantom patient as written (``patient_id`` like ``A0001``)."""

    patient_id: str
    dicom_patient_id: str
    letter: str
    storage: str
    transfer_syntax: str
    transfer_syntax_name: str
    ordering: str
    ct_slices: int
    fused_images: int
    pet_slices: int
    slice_thickness_mm: float
    pixel_spacing_mm: float
    xml_ct: int
    xml_fused: int
    objects: int
    lesions: tuple[LesionRecord, ...]


def _lesion_record(writer: PatientWriter, index: int) -> LesionRecord:
    lesion = writer.lesions[index]
    x, y, z = lesion.centre_mm
    col, row = writer.grid.to_px(x, y)
    ct_hits = writer.written.hits["ct"]
    annotated = {
        entry["slice_index"]
        for entry in writer.annotations
        if entry["series"] == "ct" and any(o["lesion"] == index for o in entry["objects"])
    }
    return LesionRecord(
        letter=lesion.letter,
        kind=lesion.kind,
        centre_mm=(round(x + writer.offset[0], 3), round(y + writer.offset[1], 3), round(z, 3)),
        centre_px=(round(col, 2), round(row, 2)),
        centre_slice=round((z - writer.z[0]) / writer.thickness, 3),
        radii_mm=tuple(round(r, 2) for r in lesion.radii_mm),  # type: ignore[arg-type]
        diameter_mm=round(2 * sum(lesion.radii_mm) / 3, 2),
        nodes=len(lesion.nodes),
        suv=round(lesion.suv, 2),
        slices=tuple(g for g in sorted(ct_hits) if any(h.lesion == index for h in ct_hits[g])),
        annotated_slices=tuple(sorted(annotated)),
    )


def patient_record(writer: PatientWriter) -> PatientRecord:
    """The record of a patient whose writer has run."""
    plan, written = writer.plan, writer.written
    syntax = TRANSFER_SYNTAXES[plan.syntax]
    entries = writer.annotations
    return PatientRecord(
        patient_id=plan.patient_id,
        dicom_patient_id=writer.study.patient_id,
        letter=plan.letter,
        storage=plan.storage,
        transfer_syntax=str(syntax),
        transfer_syntax_name=syntax.name,
        ordering=plan.ordering,
        ct_slices=written.files["ct"],
        fused_images=written.files["fused"],
        pet_slices=written.files["pet"],
        slice_thickness_mm=writer.thickness,
        pixel_spacing_mm=round(writer.grid.spacing_mm, 6),
        xml_ct=sum(e["series"] == "ct" for e in entries),
        xml_fused=sum(e["series"] == "fused" for e in entries),
        objects=sum(len(e["objects"]) for e in entries),
        lesions=tuple(_lesion_record(writer, i) for i in range(len(writer.lesions))),
    )


def patient_detail(writer: PatientWriter, record: PatientRecord) -> dict[str, Any]:
    """The synth.json entry: the record plus study, series, landmarks, slices and XMLs."""
    a, grid = writer.anatomy, writer.grid
    lungs = []
    for side in (-1, 1):
        cx, cy, _, _ = a.lung_ellipse(0.35, side)
        lungs.append([round(v, 2) for v in grid.to_px(cx, cy)])
    series = {
        kind: {
            "uid": info.uid,
            "number": info.number,
            "description": info.description,
            "folder": writer.series_dir(kind).relative_to(writer.options.dicom_root).as_posix(),
            "files": writer.written.files[kind],
        }
        for kind, info in writer.series.items()
        if writer.written.files[kind]
    }
    detail = asdict(record)
    detail.update(
        study_instance_uid=writer.study.study_uid,
        study_date=writer.study.date,
        series=series,
        anatomy={
            "fov_mm": round(grid.fov_mm, 3),
            "body_axes_mm": [round(v, 2) for v in a.body_axes_mm],
            "lung_centres_px": lungs,
            "heart_centre_px": [round(v, 2) for v in grid.to_px(*a.heart_centre_mm)],
            "contrast": a.contrast,
            "noise_hu": round(a.noise_hu, 2),
            "apex_z_mm": round(a.apex_z_mm, 3),
            "chest_length_mm": round(a.chest_length_mm, 3),
        },
        slices=writer.written.slices,
        annotations=writer.annotations,
    )
    return detail
