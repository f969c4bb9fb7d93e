"""Write one phantom patient: CT series, optional fused PET/CT and PET series, VOC XMLs.

Slice order on purpose does not always follow file names (see :data:`ORDERINGS`), so
readers must sort by geometry: ``head-first`` numbers from the top (instance 1 at the
highest z, like the real A0002), ``feet-first`` from the bottom, ``interleaved`` in the
order of an interleaved acquisition (every other slice from the top, then the rest), and
``files-by-uid`` numbers instances head-first but names files in SOPInstanceUID order.

Slice thickness is ``(chest length + 20 mm) / slices`` rounded down to 0.25 mm and kept
within 1.25-5 mm; when the slices cannot cover the chest they cover a slab centred on
the main lesion. Fused screenshots show every other CT position, counted from the top.

Random streams are separate per purpose (anatomy, CT noise, annotator jitter, PET noise,
metadata, screenshot view), seeded by (seed, letter, patient number), so a patient's CT
pixels depend only on seed, ID, size and slices: not on the number of patients, storage,
compression, layout, PET or fused options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydicom.uid import UID, generate_uid

from detect.histology import LETTERS
from detect.synth.annotate import Hit, ScreenshotView, annotated, write_xml
from detect.synth.dicom import (
    CT_IMAGE_STORAGE,
    PET_IMAGE_STORAGE,
    SECONDARY_CAPTURE_STORAGE,
    SeriesInfo,
    StudyInfo,
    ct_dataset,
    file_name,
    fused_dataset,
    make_study,
    numbering,
    pet_dataset,
    series_folder,
    series_infos,
    study_folder,
    write_dataset,
)
from detect.synth.phantom.anatomy import Grid, make_anatomy, make_vessel_tree
from detect.synth.phantom.lesions import Lesion, make_lesions
from detect.synth.phantom.render import ChestPhantom, RenderedSlice, fused_rgb, suv_map

ORDERINGS = ("head-first", "feet-first", "interleaved", "files-by-uid")
_STREAMS = {"anatomy": 0, "noise": 1, "annotator": 2, "pet": 3, "meta": 4, "fused": 5}
PET_FWHM_MM = 6.0
#: Bq/ml per SUV per kg of weight: 370 MBq FDG, imaged 1 h after injection (decay to START).
_BQML_PER_SUV_KG = 370e6 * 0.5 ** (3600.0 / 6586.2) / 1000.0


@dataclass(frozen=True)
class PatientPlan:
    """What to write for one patient (fixed by the cohort plan)."""

    index: int
    patient_id: str
    letter: str
    storage: str
    syntax: str
    ordering: str

    def rng(self, seed: int, stream: str) -> np.random.Generator:
        """The patient's random stream ``stream`` (independent of every other)."""
        number = int(self.patient_id[1:])
        letter = LETTERS.index(self.letter)
        return np.random.default_rng([seed, letter, number, _STREAMS[stream]])


@dataclass(frozen=True)
class Options:
    """Cohort-wide options a patient writer needs."""

    seed: int
    size: int
    slices: int
    layout: str
    fused: bool
    pet: bool
    dicom_root: Path
    annotation_root: Path


def thickness_mm(chest_length_mm: float, slices: int) -> float:
    """Slice thickness (mm) for ``slices`` slices over a chest (see the module doc)."""
    raw = math.floor((chest_length_mm + 20.0) / slices * 4.0) / 4.0
    return min(5.0, max(1.25, raw))


@dataclass
class _Written:
    hits: dict[str, dict[int, list[Hit]]] = field(default_factory=lambda: {"ct": {}, "fused": {}})
    uids: dict[str, dict[int, str]] = field(default_factory=lambda: {"ct": {}, "fused": {}})
    files: dict[str, int] = field(default_factory=lambda: {"ct": 0, "fused": 0, "pet": 0})
    bytes: dict[str, int] = field(default_factory=lambda: {"ct": 0, "fused": 0, "pet": 0})
    slices: list[dict[str, Any]] = field(default_factory=list)


class PatientWriter:
    """Renders and writes one patient (see :meth:`run`)."""

    def __init__(self, plan: PatientPlan, options: Options) -> None:
        self.plan, self.options = plan, options
        rng = plan.rng(options.seed, "anatomy")
        self.anatomy = make_anatomy(rng)
        vessels = make_vessel_tree(rng, self.anatomy)
        self.lesions: tuple[Lesion, ...] = make_lesions(rng, plan.letter, self.anatomy)
        fov = 2 * self.anatomy.body_axes_mm[0] / float(rng.uniform(0.86, 0.92))
        self.grid = Grid(options.size, fov, (float(rng.uniform(-5, 5)), float(rng.uniform(0, 10))))
        self.phantom = ChestPhantom(self.anatomy, self.grid, vessels)
        self.offset = (0.0, float(rng.uniform(-150, -110)))  # phantom mm → patient LPS mm
        self.thickness = thickness_mm(self.anatomy.chest_length_mm, options.slices)
        self.z = self._positions(options.slices)
        meta = plan.rng(options.seed, "meta")
        self.study: StudyInfo = make_study(
            meta, plan.patient_id, self.uid("study"), self.uid("frame")
        )
        self.series: dict[str, SeriesInfo] = series_infos(
            meta, self.study, self.thickness, self.uid
        )
        self.ct_uids = [self.uid("ct", g) for g in range(options.slices)]
        self.instance, self.file_number = numbering(plan.ordering, self.ct_uids)
        count = options.slices
        self.fused_slices = [g for g in range(count) if options.fused and (count - 1 - g) % 2 == 0]
        self.written = _Written()
        self.annotations: list[dict[str, Any]] = []

    @staticmethod
    def series_kinds() -> tuple[tuple[str, str, UID], ...]:
        """(kind, Modality, SOP class) of the series a patient can have, manifest order."""
        return (
            ("ct", "CT", CT_IMAGE_STORAGE),
            ("pet", "PT", PET_IMAGE_STORAGE),
            ("fused", "CT", SECONDARY_CAPTURE_STORAGE),
        )

    def uid(self, *parts: object) -> str:
        """A UID fixed by (seed, patient, parts)."""
        sources = ["detect-synth", str(self.options.seed), self.plan.patient_id, *map(str, parts)]
        return str(generate_uid(entropy_srcs=sources))

    def _positions(self, slices: int) -> list[float]:
        """Slice centres z (mm), ascending: the chest, or a slab centred on the lesion."""
        a, thick = self.anatomy, self.thickness
        top, bottom = a.apex_z_mm + 10.0, a.z_at(1.0) - 10.0
        coverage = slices * thick
        if coverage >= top - bottom:
            upper = (top + bottom + coverage) / 2
        else:
            upper = min(top, max(bottom + coverage, self.lesions[0].centre_mm[2] + coverage / 2))
        upper = round(upper * 2) / 2
        return [upper - thick * (slices - g - 0.5) for g in range(slices)]

    def series_dir(self, kind: str) -> Path:
        """Folder of the series ``kind`` (ct, fused or pet)."""
        study, info, layout = self.study, self.series[kind], self.options.layout
        return (
            self.options.dicom_root
            / study.patient_id
            / study_folder(study.date, study.description, study.study_uid, layout)
            / series_folder(info.number, info.description, info.uid, layout)
        )

    def run(self) -> _Written:
        """Write every DICOM file and XML of the patient; returns what was written."""
        fused_set = set(self.fused_slices)
        noise = self.plan.rng(self.options.seed, "noise")
        pet_noise = self.plan.rng(self.options.seed, "pet")
        view = ScreenshotView.random(self.plan.rng(self.options.seed, "fused"), self.grid.size)
        for g, z in enumerate(self.z):
            labels = g in fused_set or self.options.pet
            rendered = self.phantom.render(z, self.lesions, noise, self.thickness, labels=labels)
            self._write_ct(g, rendered)
            if labels:
                suv = suv_map(rendered, self.lesions, PET_FWHM_MM / self.grid.spacing_mm)
                if g in fused_set:
                    self._write_fused(g, rendered, suv, view)
                if self.options.pet:
                    self._write_pet(g, suv, pet_noise)
        self.annotations = self._annotate()
        return self.written

    def _save(self, kind: str, ds: Any, path: Path, syntax: str = "explicit") -> None:
        write_dataset(ds, path, syntax)
        self.written.files[kind] += 1
        self.written.bytes[kind] += path.stat().st_size

    def _pixel_origin(self, spacing: float) -> tuple[float, float]:
        """Patient x, y (mm) of the centre of the first pixel of a grid of ``spacing`` mm."""
        cx, cy = self.grid.centre_mm
        half = self.grid.fov_mm / 2 - spacing / 2
        return (cx - half + self.offset[0], cy - half + self.offset[1])

    def _write_ct(self, g: int, rendered: RenderedSlice) -> None:
        uid, count, layout = self.ct_uids[g], len(self.z), self.options.layout
        path = self.series_dir("ct") / file_name(self.file_number[g], count, uid, layout)
        x0, y0 = self._pixel_origin(self.grid.spacing_mm)
        ds = ct_dataset(
            self.study,
            self.series["ct"],
            sop_uid=uid,
            instance=self.instance[g],
            position=(x0, y0, self.z[g]),
            spacing_mm=self.grid.spacing_mm,
            thickness_mm=self.thickness,
            hu=rendered.hu,
            signed=self.plan.storage == "signed",
        )
        self._save("ct", ds, path, self.plan.syntax)
        self.written.hits["ct"][g] = [Hit.of(s) for s in rendered.sections]
        self.written.uids["ct"][g] = uid
        self.written.slices.append(
            {
                "index": g,
                "z_mm": self.z[g],
                "t": round(self.anatomy.t_at(self.z[g]), 4),
                "instance_number": self.instance[g],
                "sop_instance_uid": uid,
                "file": path.relative_to(self.options.dicom_root).as_posix(),
            }
        )

    def _write_fused(
        self, g: int, rendered: RenderedSlice, suv: np.ndarray, view: ScreenshotView
    ) -> None:
        rgb = view.apply(fused_rgb(rendered.hu, suv))
        number = len(self.fused_slices) - self.fused_slices.index(g)  # numbered from the top
        uid = self.uid("fused", g)
        name = file_name(number, len(self.fused_slices), uid, self.options.layout)
        ds = fused_dataset(self.study, self.series["fused"], sop_uid=uid, instance=number, rgb=rgb)
        self._save("fused", ds, self.series_dir("fused") / name)
        hits = [view.hit(s) for s in rendered.sections]
        self.written.hits["fused"][g] = [h for h in hits if h is not None]
        self.written.uids["fused"][g] = uid

    def _write_pet(self, g: int, suv: np.ndarray, noise: np.random.Generator) -> None:
        matrix = max(8, self.grid.size // 4)
        small = np.asarray(
            cv2.resize(suv, (matrix, matrix), interpolation=cv2.INTER_AREA), dtype=np.float32
        )
        jitter = noise.standard_normal(small.shape).astype(np.float32)
        small = np.maximum(small + jitter * 0.1 * np.sqrt(small + 0.05), 0.0)
        spacing, count = self.grid.fov_mm / matrix, len(self.z)
        x0, y0 = self._pixel_origin(spacing)
        uid, instance = self.uid("pet", g), count - g  # numbered from the top
        ds = pet_dataset(
            self.study,
            self.series["pet"],
            sop_uid=uid,
            instance=instance,
            count=count,
            position=(x0, y0, self.z[g]),
            spacing_mm=spacing,
            thickness_mm=self.thickness,
            bqml=small * (_BQML_PER_SUV_KG / self.study.weight_kg),
            injection_time=_an_hour_before(self.series["pet"].time),
        )
        name = file_name(instance, count, uid, self.options.layout)
        self._save("pet", ds, self.series_dir("pet") / name)

    def _annotate(self) -> list[dict[str, Any]]:
        """Write the XMLs of both series (see :mod:`detect.synth.annotate`)."""
        rng = self.plan.rng(self.options.seed, "annotator")
        folder = self.options.annotation_root / self.plan.patient_id
        size = self.grid.size
        entries = []
        for kind, depth in (("ct", 1), ("fused", 3)):
            for g, hits in annotated(self.written.hits[kind]).items():
                uid = self.written.uids[kind][g]
                path = folder / f"{uid}.xml"
                objects = write_xml(path, self.plan.letter, hits, rng, (size, size, depth))
                entries.append(
                    {
                        "series": kind,
                        "slice_index": g,
                        "sop_instance_uid": uid,
                        "xml": path.relative_to(self.options.annotation_root).as_posix(),
                        "objects": objects,
                    }
                )
        return entries


def _an_hour_before(time: str) -> str:
    return f"{(int(time[:2]) - 1) % 24:02d}{time[2:]}"
