"""Shared fixtures: a tiny phantom cohort made once per session, and its conversion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.realdata import REALDATA_ROOT

REALDATA = REALDATA_ROOT / "lung-pet-ct-dx-A0002"


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    """8 phantom patients, 16 slices of 96 px, with fused and PET series (read-only!)."""
    from detect.synth.cohort import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("cohort")
    return synthesize(
        out, SynthConfig(patients=8, slices=16, size=96, seed=0, pet=True, fused=True)
    )


@pytest.fixture(scope="session")
def dataset(cohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cohort converted with default options (read-only!)."""
    from detect.convert import convert
    from detect.convert.config import ConvertConfig

    out = tmp_path_factory.mktemp("dataset")
    convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, out, workers=2))
    return out


@pytest.fixture
def cohort_copy(cohort, tmp_path: Path):
    """A writable copy of the cohort, for planting faults."""
    root = tmp_path / "cohort"
    shutil.copytree(cohort.dicom_root.parent, root)
    return root / cohort.dicom_root.name, root / cohort.annotation_root.name


# Session fixtures of the hostile-input tests (a small cohort, two decompression bombs).
from support.hostile import bombs, small_cohort  # noqa: E402, F401

# Session fixtures of the YOLO / predict tests (one tiny training per session).
from support.yolo import (  # noqa: E402, F401
    tiny_cohort,
    tiny_dataset,
    tiny_run,
    yolo_env,
)
