"""Header values that make HU or geometry meaningless are refused (issue 21, items 1, 8):
the one slice classifier (SliceHeader.unusable) and read_hu agree, non-finite HU after the
LUT are refused, and one bad orientation does not reorder a series."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import DataElement
from support.hostile import rewrite
from support.yolo import write_ct_series

from detect.errors import DicomError
from detect.io.dicom import read_header, read_hu

BAD_VALUES = [
    ("RescaleSlope", "NaN"), ("RescaleSlope", "0"), ("RescaleSlope", "-1"),
    ("RescaleSlope", "1e308"), ("RescaleSlope", "1e-9"), ("RescaleSlope", ["1", "2"]),
    ("RescaleIntercept", "1e9"), ("RescaleIntercept", "-inf"),
    ("PixelSpacing", ["0", "0.7"]), ("PixelSpacing", ["0.7", "-0.7"]),
    ("PixelSpacing", ["nan", "0.7"]), ("PixelSpacing", ["0.7", "500"]),
    ("ImagePositionPatient", ["inf", "0", "0"]), ("ImagePositionPatient", ["0", "0", "1e7"]),
    ("ImageOrientationPatient", ["nan", "0", "0", "0", "1", "0"]),
    ("ImageOrientationPatient", ["1", "0", "0", "1", "0", "0"]),  # not at right angles
    ("ImageOrientationPatient", ["2", "0", "0", "0", "1", "0"]),  # not a unit vector
    ("ImageOrientationPatient", ["1", "0", "0", "0", "1"]),  # five values
    ("SliceThickness", "-5"), ("SliceThickness", "0"), ("SpacingBetweenSlices", "nan"),
]


@pytest.mark.parametrize(("keyword", "value"), BAD_VALUES,
                         ids=[f"{k}={v}" for k, v in BAD_VALUES])
def test_an_implausible_value_is_refused_by_the_header_and_by_read_hu(tmp_path, keyword, value):
    (path,) = write_ct_series(tmp_path / "in", slices=1)
    rewrite(path, **{keyword: value})
    reason, detail = read_header(path).unusable(10**9) or ("", "")
    assert reason == "implausible-value" and keyword in detail
    # read_hu is the second line of defence (a neighbour read for 2.5d, a changed file)
    with pytest.raises(DicomError, match=keyword):
        read_hu(path)


def test_a_value_that_is_not_a_number_is_refused_not_taken_as_absent(tmp_path):
    (path,) = write_ct_series(tmp_path / "in", slices=1)
    ds = pydicom.dcmread(path)
    ds[0x00281053] = DataElement(0x00281053, "LO", "abc")  # RescaleSlope as text
    ds.save_as(path, enforce_file_format=True)
    header = read_header(path)
    assert header.has_rescale
    assert header.unusable(10**9)[0] == "implausible-value"  # type: ignore[index]


def test_plausible_values_of_real_scanners_pass(tmp_path):
    from detect.io.dicom_values import numbers

    (path,) = write_ct_series(tmp_path / "in", slices=1)
    for changes in ({"RescaleSlope": "0.5", "RescaleIntercept": "-8192"},
                    {"ImageOrientationPatient": ["1", "0", "0", "0", "0.974370", "-0.224951"]},
                    {"SliceThickness": "1.25", "SpacingBetweenSlices": "1.25",
                     "PixelSpacing": ["0.976562", "0.976562"]}):
        rewrite(path, **changes)
        assert read_header(path).unusable(10**9) is None, changes
        assert read_hu(path).shape == (64, 64)
    assert numbers(None, 3) is None and numbers("", 2) is None


def test_non_finite_hu_after_the_lut_are_refused(tmp_path):
    (path,) = write_ct_series(tmp_path / "in", slices=1)
    ds = pydicom.dcmread(path)
    hu = np.full((64, 64), -800.0, np.float32)
    hu[3, 3], hu[5, 5] = np.nan, np.inf
    del ds.PixelData, ds.PixelRepresentation
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 32, 31
    ds.FloatPixelData = hu.tobytes()
    ds.save_as(path, enforce_file_format=True)
    assert read_header(path).unusable(10**9) is None  # the header is fine
    with pytest.raises(DicomError, match="2 of 4,096 pixels are not finite"):
        read_hu(path)


def test_one_nan_orientation_does_not_reorder_the_series(tmp_path):
    from detect.io.slice_order import sort_slices

    paths = write_ct_series(tmp_path / "s", slices=8)
    truth = [read_header(p).sop_instance_uid for p in paths]  # z = 0, -5, ... -35
    bad = paths[3]
    rewrite(bad, ImageOrientationPatient=["nan", "0", "0", "0", "1", "0"])
    shuffled = [bad, paths[6], paths[0], paths[5], paths[1], paths[7], paths[2], paths[4]]
    order = [h.sop_instance_uid for h in sort_slices(read_header(p) for p in shuffled)]
    assert order == list(reversed(truth))  # by z, whichever slice came first
    assert read_header(bad).unusable(10**9)[0] == "implausible-value"  # type: ignore[index]
