"""No ground-truth box falls outside the lung field: the 161 boxes of the three shared real
patients (``../shared/realdata``, skipped visibly when absent) and every CT box of
phantom cohorts (their hilar B and central G tumours included)."""

from __future__ import annotations

from collections import Counter

import pytest
from support.lungs import boxes_in_field
from support.realdata import PATIENTS, real_patient

from detect.synth.cohort import SynthConfig, synthesize

#: The archive's XML files of the three patients, one box each (their READMEs).
REAL_BOXES = {"A0002": 18, "B0021": 64, "E0003": 79}


@pytest.mark.parametrize("patient", PATIENTS)
def test_no_real_box_is_outside_the_lung_field(patient):
    folder = real_patient(patient)
    found = boxes_in_field(folder / "Lung-PET-CT-Dx", folder / "Annotation")
    assert len(found) == REAL_BOXES[patient]
    outside = [b for b in found if b.fraction == 0.0]
    assert outside == []
    # a margin, not a near miss: every box has at least a fifth of its area in the field
    # (the lowest, 0.25, is E0003's large tumour in a collapsed lung)
    assert min(b.fraction for b in found) > 0.2


def test_no_phantom_box_is_outside_the_lung_field(cohort):
    found = boxes_in_field(cohort.dicom_root, cohort.annotation_root)
    assert len(found) >= 20
    assert [b for b in found if b.fraction == 0.0] == []


def test_no_phantom_box_is_outside_the_lung_field_at_512_px(tmp_path):
    """Full-size slices (blocks of 4 pixels), hilar and central letters weighed up."""
    made = synthesize(tmp_path, SynthConfig(patients=4, slices=20, size=512, seed=3,
                                            letter_mix={"A": 1, "B": 2, "G": 2},
                                            fused=False, compression="none"))
    found = boxes_in_field(made.dicom_root, made.annotation_root)
    assert len(Counter(b.patient_id for b in found)) == 4
    assert [b for b in found if b.fraction == 0.0] == []
