"""Declared sizes are checked before decoding; deflated files inflate through a bound."""

from __future__ import annotations

import contextlib
import tracemalloc
from pathlib import Path

import pydicom
import pytest
from support.hostile import new_uid, rewrite, write_deflate_bomb
from support.yolo import write_ct_series

from detect.errors import DicomError
from detect.io.dicom import (
    ImageTooLargeError,
    MissingRescaleError,
    read_header,
    read_hu,
    read_rgb,
)
from detect.io.dicom_limits import DEFAULT_MAX_PIXELS, size_problem


def _peak_mib(fn, *args, **kwargs) -> float:
    tracemalloc.start()
    try:
        with contextlib.suppress(DicomError):
            fn(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_the_default_limit_and_its_message():
    assert DEFAULT_MAX_PIXELS == 4096 * 4096 * 3
    assert size_problem(512, 512, 1, 1, DEFAULT_MAX_PIXELS) is None
    assert size_problem(4096, 4096, 3, 1, DEFAULT_MAX_PIXELS) is None
    message = size_problem(60000, 60000, 1, 1, DEFAULT_MAX_PIXELS)
    assert message is not None and "60000 x 60000" in message and "--max-pixels" in message
    assert size_problem(512, 512, 1, 200, DEFAULT_MAX_PIXELS) is not None  # frames count


def test_a_deflate_bomb_header_reads_without_inflating_it(bombs):
    header = read_header(bombs.deflate)
    assert (header.rows, header.columns) == (16384, 16384)
    assert header.size_problem(DEFAULT_MAX_PIXELS) is not None
    assert _peak_mib(read_header, bombs.deflate) < 64  # 512 MiB if inflated whole


def test_bombs_are_refused_before_decoding(bombs):
    for bomb in (bombs.rle, bombs.deflate):
        with pytest.raises(ImageTooLargeError, match="over the limit"):
            read_hu(bomb)
        with pytest.raises(ImageTooLargeError):
            read_rgb(bomb)
    assert _peak_mib(read_hu, bombs.deflate) < 64
    assert _peak_mib(read_hu, bombs.rle) < 64


def test_a_deflated_file_that_inflates_beyond_its_header_is_refused(bombs, tmp_path):
    liar = tmp_path / "liar.dcm"
    write_deflate_bomb(liar, bombs.like, new_uid("liar"), side=4096, declared_side=64)
    assert read_header(liar).rows == 64
    with pytest.raises(ImageTooLargeError, match="inflates to more"):
        read_hu(liar)
    assert _peak_mib(read_hu, liar) < 64


def test_broken_deflate_streams_are_dicom_errors(tmp_path):
    (plain,) = write_ct_series(tmp_path / "in", slices=1)
    ds = pydicom.dcmread(plain)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    broken = tmp_path / "broken.dcm"
    ds.save_as(broken, enforce_file_format=True)
    raw = broken.read_bytes()
    broken.write_bytes(raw[:400] + b"\xff" * 64 + raw[464:])
    with pytest.raises(DicomError):
        read_hu(broken)
    with pytest.raises(DicomError):
        read_header(broken)


def test_a_ct_slice_without_rescale_is_refused_and_flagged(tmp_path):
    (plain,) = write_ct_series(tmp_path / "in", slices=1)
    assert read_header(plain).rescale_problem is None
    rewrite(plain, RescaleIntercept=None)
    header = read_header(plain)
    assert not header.has_rescale and "RescaleIntercept" in str(header.rescale_problem)
    with pytest.raises(MissingRescaleError):
        read_hu(plain)
    rewrite(plain, Modality="MR")  # not CT: no rescale is needed to call it not CT
    assert read_header(plain).rescale_problem is None


def test_the_limit_can_be_raised_and_lowered(tmp_path):
    (plain,) = write_ct_series(tmp_path / "in", slices=1, size=64)
    assert read_hu(plain, max_pixels=64 * 64).shape == (64, 64)
    with pytest.raises(ImageTooLargeError):
        read_hu(plain, max_pixels=64 * 64 - 1)


def test_read_hu_is_unchanged_for_plain_files(tmp_path):
    (plain,) = write_ct_series(tmp_path / "in", slices=1, hu_levels=[-800.0])
    hu = read_hu(Path(plain))
    assert float(hu[0, 0]) == -800.0
