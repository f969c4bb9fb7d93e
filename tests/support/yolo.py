"""Helpers and session fixtures for the YOLO / predict tests (no tests here).

- ``make_tiny_dataset``: a converted dataset of the exact contract-2 shape (64 px PNGs
  with a bright square per image, YOLO labels, data.yaml, dataset.json, coco/*.json).
- ``write_ct_series``: a few tiny CT DICOM slices written with pydicom.
- ``NetGuard``: makes every socket connection and DNS lookup fail, and records them.
- fixtures ``yolo_env`` / ``tiny_cohort`` / ``tiny_dataset`` / ``tiny_run`` (registered in
  conftest.py): ``detect synth`` + ``detect convert`` of a 4-patient phantom cohort, and
  one tiny YOLO training on it per session (imgsz 64, 1 epoch, CPU), under NetGuard.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from detect.boxes import xyxy_to_yolo
from detect.recipe import DEFAULT_RECIPE, ChannelRecipe

CLASSES = ("A", "B", "E", "G")
SPLIT_SIZES = {"train": 8, "val": 4, "test": 4}
SQUARE = 16  # px side of the bright "tumour" in the tiny images


def run_fresh_python(code: str, config_home: Path) -> subprocess.CompletedProcess[str]:
    """``code`` in a new interpreter with no ``YOLO_*`` variables and its config home in
    ``config_home`` (ultralytics reads its environment once, at import)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOLO_")}
    env["XDG_CONFIG_HOME"] = str(config_home)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)


def _square_at(index: int, size: int) -> tuple[int, int]:
    rng = np.random.default_rng(index)
    x, y = (int(v) for v in rng.integers(4, size - SQUARE - 4, 2))
    return x, y


def make_tiny_dataset(
    root: Path, *, size: int = 64, recipe: ChannelRecipe = DEFAULT_RECIPE
) -> Path:
    """Write a tiny dataset folder; image i of a split has one box of class i % 4."""
    manifest_splits: dict[str, list[str]] = {}
    counter = 0
    for split, count in SPLIT_SIZES.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        images, annotations, patients = [], [], []
        for i in range(count):
            counter += 1
            letter = CLASSES[i % 4]
            patient = f"{letter}{counter:04d}"
            patients.append(patient)
            name = f"{patient}_1.2.3.{counter}"
            x, y = _square_at(counter, size)
            image = np.full((size, size, 3), 30, np.uint8)
            image[y : y + SQUARE, x : x + SQUARE] = (230, 200, 170)
            cv2.imwrite(str(root / "images" / split / f"{name}.png"), image[:, :, ::-1])
            xyxy = (float(x), float(y), float(x + SQUARE), float(y + SQUARE))
            cx, cy, w, h = xyxy_to_yolo(xyxy, size, size)
            (root / "labels" / split / f"{name}.txt").write_text(
                f"{i % 4} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n"
            )
            images.append({
                "id": i + 1, "file_name": f"images/{split}/{name}.png", "width": size,
                "height": size, "patient_id": patient, "histology": letter,
                "sop_instance_uid": f"1.2.3.{counter}", "series_instance_uid": f"1.2.9.{counter}",
                "study_instance_uid": "1.2.8", "source_dicom": "", "source_xml": "",
                "slice_index": 0,
            })
            annotations.append({
                "id": i + 1, "image_id": i + 1, "category_id": i % 4 + 1, "iscrowd": 0,
                "bbox": [float(x), float(y), float(SQUARE), float(SQUARE)],
                "area": float(SQUARE * SQUARE), "histology": letter,
            })
        manifest_splits[split] = patients
        coco = {"images": images, "annotations": annotations, "categories": [
            {"id": k + 1, "name": c, "supercategory": "tumor"} for k, c in enumerate(CLASSES)]}
        (root / "coco").mkdir(exist_ok=True)
        (root / "coco" / f"{split}.json").write_text(json.dumps(coco))
    names = "\n".join(f"  {k}: {c}" for k, c in enumerate(CLASSES))
    (root / "data.yaml").write_text(
        f"path: {root.resolve()}\ntrain: images/train\nval: images/val\ntest: images/test\n"
        f"names:\n{names}\n"
    )
    manifest = {
        "format": "detect-dataset", "version": 1, "classes": list(CLASSES),
        "class_mode": "histology", "recipe": recipe.to_dict(), "splits": manifest_splits,
        "patients": {}, "image_size": size,
    }
    (root / "dataset.json").write_text(json.dumps(manifest, indent=1))
    return root


def write_ct_series(
    folder: Path,
    *,
    patient_id: str = "Lung_Dx-A0001",
    slices: int = 4,
    size: int = 64,
    hu_levels: Sequence[float] | None = None,
    square: tuple[int, int] | None = (20, 24),
    series_uid: str | None = None,
    names: Sequence[str] | None = None,
) -> list[Path]:
    """Write an axial CT series (unsigned 12-bit, intercept -1024); slice k has background
    ``hu_levels[k]`` (default -800) and a +40 HU square at ``square`` (x, y)."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study = generate_uid()
    paths = []
    for k in range(slices):
        hu = np.full((size, size), hu_levels[k] if hu_levels else -800.0, np.float32)
        if square is not None:
            x, y = square
            hu[y : y + SQUARE, x : x + SQUARE] = 40.0
        ds = _ct_dataset(hu, patient_id, study, series_uid, k)
        path = folder / (names[k] if names else f"slice{k:03d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _ct_dataset(hu: np.ndarray, patient: str, study: str, series: str, k: int) -> Any:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientID, ds.Modality, ds.SeriesDescription = patient, "CT", "tiny chest"
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [0.0, 0.0, -5.0 * k]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = np.rint(hu + 1024).astype(np.uint16).tobytes()
    return ds


class NetGuard:
    """Inside ``with NetGuard(monkeypatch) as guard``: every connect / DNS lookup raises
    and is recorded in ``guard.attempts``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.attempts: list[str] = []

    def _refuse(self, what: str) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            self.attempts.append(f"{what} {args[1:3] if what == 'connect' else args[:2]}")
            raise OSError(f"network disabled in tests ({what})")

        return refuse

    def __enter__(self) -> NetGuard:
        self.monkeypatch.setattr(socket.socket, "connect", self._refuse("connect"))
        self.monkeypatch.setattr(socket.socket, "connect_ex", self._refuse("connect"))
        self.monkeypatch.setattr(socket, "getaddrinfo", self._refuse("dns"))
        self.monkeypatch.setattr(socket, "create_connection", self._refuse("create_connection"))
        return self

    def __exit__(self, *exc: object) -> None:
        self.monkeypatch.undo()


@pytest.fixture(scope="session")
def yolo_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """detect's ultralytics config home in a temporary folder for the whole session."""
    home = tmp_path_factory.mktemp("config-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(home))
        yield home


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A phantom cohort: 4 patients (3 A, 1 B), 12 CT slices of 64 px, PET and fused
    series (read-only!)."""
    from detect.synth.cohort import SynthConfig, synthesize

    config = SynthConfig(patients=4, slices=12, size=64, seed=0, letter_mix={"A": 3, "B": 1},
                         pet=True, fused=True)
    return synthesize(tmp_path_factory.mktemp("tiny-cohort") / "cohort", config)


@pytest.fixture(scope="session")
def tiny_dataset(tiny_cohort: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny cohort converted by detect convert (read-only: copy it to change it)."""
    from detect.convert import convert
    from detect.convert.config import ConvertConfig

    out = tmp_path_factory.mktemp("tiny-dataset") / "dataset"
    convert(ConvertConfig(tiny_cohort.dicom_root, tiny_cohort.annotation_root, out, workers=1))
    return out


@pytest.fixture(scope="session")
def tiny_run(yolo_env: Path, tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    """One yolov8n trained 1 epoch at 64 px on CPU with the demo's hyperparameters (an
    optimizer step per batch, AdamW at lr 0.004, no mosaic), under NetGuard:
    (TrainResult, attempts)."""
    from detect.train import TrainConfig, train

    project = tmp_path_factory.mktemp("runs")
    config = TrainConfig(model="yolov8", data=tiny_dataset, epochs=1, imgsz=64, batch=4,
                         nbs=4, optimizer="AdamW", lr0=0.004, mosaic=0.0, device="cpu",
                         project=project, workers=0, seed=0)
    with pytest.MonkeyPatch.context() as mp, NetGuard(mp) as guard:
        result = train(config)
    return result, list(guard.attempts)
