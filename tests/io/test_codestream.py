"""Compressed frames that lie about their size are refused from their header bytes, before
any decoder runs (issue 21, item 6): JPEG 2000 SIZ, JPEG SOF, JPEG-LS SOF55, RLE segments."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)
from support.yolo import write_ct_series

from detect.errors import DicomError
from detect.io.dicom import ImageTooLargeError, read_hu


def _compressed(tmp_path: Path, syntax: str, name: str) -> Path:
    (plain,) = write_ct_series(tmp_path / name, slices=1, size=64)
    ds = pydicom.dcmread(plain)
    ds.compress(syntax, generate_instance_uid=False)
    ds.save_as(plain, enforce_file_format=True)
    return plain


def _frame(path: Path) -> bytes:
    ds = pydicom.dcmread(path)
    return next(generate_frames(ds.PixelData, number_of_frames=1))


def _replace_frame(path: Path, frame: bytes) -> None:
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([frame])
    ds.save_as(path, enforce_file_format=True)


def _baseline_jpeg(tmp_path: Path) -> Path:
    (plain,) = write_ct_series(tmp_path / "jpeg", slices=1, size=64)
    ds = pydicom.dcmread(plain)
    ok, data = cv2.imencode(".jpg", np.full((64, 64), 90, np.uint8))
    assert ok
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = encapsulate([data.tobytes()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(plain, enforce_file_format=True)
    return plain


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def refuse(self: pydicom.Dataset) -> np.ndarray:
        calls.append(str(self.get("SOPInstanceUID")))
        raise AssertionError("a decoder ran")

    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(refuse))
    return calls


def _patch_sof(frame: bytes, marker: bytes, rows: int, columns: int) -> bytes:
    at = frame.index(marker)
    return frame[:at + 5] + struct.pack(">HH", rows, columns) + frame[at + 9:]


def test_genuine_compressed_slices_still_read(tmp_path):
    for syntax in (JPEG2000Lossless, JPEGLSLossless, RLELossless):
        path = _compressed(tmp_path, syntax, syntax.name.replace(" ", "-"))
        assert read_hu(path).shape == (64, 64)
    assert read_hu(_baseline_jpeg(tmp_path)).shape == (64, 64)


def test_a_jpeg2000_codestream_larger_than_its_header_is_never_decoded(tmp_path, monkeypatch):
    path = _compressed(tmp_path, JPEG2000Lossless, "j2k")
    frame = _frame(path)
    assert frame[:4] == b"\xff\x4f\xff\x51"
    liar = frame[:8] + struct.pack(">II", 2048, 2048) + frame[16:]  # Xsiz, Ysiz
    _replace_frame(path, liar)
    calls = _no_decoding(monkeypatch)
    with pytest.raises(ImageTooLargeError, match="2048 x 2048"):
        read_hu(path)
    assert calls == []


def test_a_codestream_over_max_pixels_is_refused_whatever_the_header_says(tmp_path):
    from detect.io.codestream import check_codestream

    path = _compressed(tmp_path, JPEG2000Lossless, "j2k")
    frame = _frame(path)
    ds = pydicom.dcmread(path)
    big = struct.pack(">II", 30000, 30000)  # image and tile size
    ds.PixelData = encapsulate([frame[:8] + big + frame[16:24] + big + frame[32:]])
    ds.Rows = ds.Columns = 30000  # the header agrees with the lie: --max-pixels decides
    with pytest.raises(ImageTooLargeError, match="over the limit"):
        check_codestream(ds, 4096 * 4096 * 3, "liar.dcm")


@pytest.mark.parametrize("kind", ["jpeg", "jpeg-ls"])
def test_jpeg_and_jpeg_ls_frame_headers_are_read_before_decoding(tmp_path, monkeypatch, kind):
    if kind == "jpeg":
        path, marker = _baseline_jpeg(tmp_path), b"\xff\xc0"
    else:
        path, marker = _compressed(tmp_path, JPEGLSLossless, "jls"), b"\xff\xf7"
    frame = _frame(path)
    _replace_frame(path, _patch_sof(frame, marker, 20000, 20000))
    calls = _no_decoding(monkeypatch)
    with pytest.raises(ImageTooLargeError, match="20000 x 20000"):
        read_hu(path)
    _replace_frame(path, _patch_sof(frame, marker, 32, 32))  # smaller: not a bomb, still wrong
    with pytest.raises(DicomError, match="32 x 32"):
        read_hu(path)
    assert calls == []


def test_an_rle_frame_with_the_wrong_segments_is_refused(tmp_path, monkeypatch):
    path = _compressed(tmp_path, RLELossless, "rle")
    frame = _frame(path)
    assert struct.unpack_from("<I", frame)[0] == 2  # 16-bit grey: two byte planes
    calls = _no_decoding(monkeypatch)
    _replace_frame(path, struct.pack("<I", 6) + frame[4:])
    with pytest.raises(DicomError, match="6 segments"):
        read_hu(path)
    offsets = list(struct.unpack_from("<15I", frame, 4))
    offsets[1] = len(frame) + 4096  # a segment beyond the fragment
    _replace_frame(path, frame[:4] + struct.pack("<15I", *offsets) + frame[64:])
    with pytest.raises(DicomError, match="segment offsets"):
        read_hu(path)
    assert calls == []


def test_codestream_parsers_on_hostile_headers(tmp_path):
    from detect.io.codestream import j2k_size, jpeg_size

    frame = _frame(_baseline_jpeg(tmp_path))
    size = jpeg_size(frame)
    assert size is not None and (size.rows, size.columns, size.components) == (64, 64, 1)
    assert jpeg_size(b"") is None and jpeg_size(b"\xff\xd8\xff\xda\x00\x02") is None
    assert jpeg_size(b"\xff\xd8" + b"\xff\xe0\x00\x01") is None  # a length below 2
    assert j2k_size(b"\xff\x4f\xff\x51") is None  # cut short
    siz = struct.pack(">HHHIIIIIIIIH", 0xFF51, 41, 0, 70000, 70000, 0, 0, 1, 1, 0, 0, 1)
    with pytest.raises(DicomError, match="tiles"):  # 1 x 1 tiles: 4.9 billion of them
        j2k_size(b"\xff\x4f" + siz + b"\x07\x01\x01")
