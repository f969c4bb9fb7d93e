"""Reading DICOM without trusting the sizes a file declares.

A 10 kB RLE file can declare 60000 x 60000 pixels, and a 0.5 MB Deflated Explicit VR
Little Endian file can inflate to 512 MiB; decoding either takes the memory of the whole
machine. So:

- the declared size, Rows x Columns x SamplesPerPixel x NumberOfFrames pixel samples, is
  checked against a limit before any pixel is decoded (:func:`size_problem`);
- a deflated file (where pydicom would inflate the whole dataset even to read a header) is
  inflated here through a bounded stream: a header read inflates at most
  :data:`HEADER_INFLATE_BYTES`; a pixel read first checks the declared size from that
  header, then inflates at most the declared pixel bytes plus the header
  (:func:`read_dataset_bounded`).

The default limit, :data:`DEFAULT_MAX_PIXELS` = 4096 x 4096 x 3 pixel samples: a CT slice
is 512 x 512 (a few are 1024 x 1024) and the collection's fused screenshots are RGB at
most 1024 x 1024, so the limit has 16 times the largest real image as margin while one
decoded image stays under 100 MiB (16-bit samples) per worker process. ``--max-pixels``
raises it for larger images.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import FileDataset
from pydicom.filereader import read_dataset, read_file_meta_info
from pydicom.tag import BaseTag, Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian

from detect.errors import ConfigError, DicomError

DEFAULT_MAX_PIXELS = 4096 * 4096 * 3
#: A header read of a deflated file inflates at most this much (headers are < 100 kB).
HEADER_INFLATE_BYTES = 4 << 20
#: Group 0002 (file meta) longer than this is not a real file's.
_MAX_META_BYTES = 1 << 20
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                       b"UR", b"UT", b"UV"})
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})
_CHARSET_TAG = 0x00080005


class ImageTooLargeError(DicomError):
    """A file declares (or inflates to) more pixel data than the limit allows."""


def declared_samples(rows: int, columns: int, samples_per_pixel: int, frames: int) -> int:
    """Pixel samples a file declares (Rows x Columns x SamplesPerPixel x NumberOfFrames)."""
    return max(rows, 0) * max(columns, 0) * max(samples_per_pixel, 1) * max(frames, 1)


def size_problem(
    rows: int, columns: int, samples_per_pixel: int, frames: int, max_pixels: int
) -> str | None:
    """Why an image of this declared size is refused, or None if it fits ``max_pixels``."""
    samples = declared_samples(rows, columns, samples_per_pixel, frames)
    if samples <= max_pixels:
        return None
    return (
        f"declares {rows} x {columns} px x {max(samples_per_pixel, 1)} sample(s) x "
        f"{max(frames, 1)} frame(s) = {samples:,} pixel samples, over the limit of "
        f"{max_pixels:,}; not decoded (raise --max-pixels if the image is genuine)"
    )


def _int(ds: pydicom.Dataset, keyword: str, default: int) -> int:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def check_dataset_size(ds: pydicom.Dataset, max_pixels: int, name: str) -> int:
    """The declared pixel bytes of a dataset, after checking its size.

    Raises:
        ImageTooLargeError: the dataset declares more than ``max_pixels`` samples.
    """
    rows, columns = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    samples, frames = _int(ds, "SamplesPerPixel", 1), _int(ds, "NumberOfFrames", 1)
    problem = size_problem(rows, columns, samples, frames, max_pixels)
    if problem is not None:
        raise ImageTooLargeError(f"{name}: {problem}")
    bits = max(_int(ds, "BitsAllocated", 16), 1)
    return declared_samples(rows, columns, samples, frames) * ((bits + 7) // 8)


def _meta_syntax(path: Path) -> tuple[str | None, int]:
    """Transfer syntax UID in the file meta and where the dataset starts (Part 10 files;
    ``(None, 0)`` for anything else, which pydicom then judges)."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
        if len(head) < 144 or head[128:132] != b"DICM":
            return None, 0
        if head[132:136] == b"\x02\x00\x00\x00" and head[136:138] == b"UL":
            end = 144 + struct.unpack_from("<I", head, 140)[0]
            if end > _MAX_META_BYTES:
                return None, 0
            if end > len(head):
                head += handle.read(end - len(head))
    syntax, position = None, 132
    while position + 8 <= len(head):
        group, element = struct.unpack_from("<HH", head, position)
        if group != 2:
            break
        vr = head[position + 4 : position + 6]
        if vr in _LONG_VRS:
            if position + 12 > len(head):
                break
            length, start = struct.unpack_from("<I", head, position + 8)[0], position + 12
        else:
            length, start = struct.unpack_from("<H", head, position + 6)[0], position + 8
        if element == 0x0010:
            syntax = head[start : start + length].decode("ascii", "replace").strip(" \x00")
        position = start + length
    return syntax, position


def _stop_at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
    return int(tag) in _PIXEL_TAGS


def read_dataset_bounded(
    path: Path,
    *,
    stop_before_pixels: bool,
    specific_tags: list[str] | list[BaseTag] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> pydicom.Dataset:
    """``pydicom.dcmread`` that never inflates or decodes more than the limits allow.

    Plain files are read with large values (the pixel data) deferred, so nothing big is
    read before the caller checks the declared size (:func:`check_dataset_size`).
    ``specific_tags`` may be keywords or tags; callers that read many files pass tags
    (pydicom looks each keyword up again on every call).

    Raises:
        ImageTooLargeError: a deflated file declares, or inflates to, more than allowed.
        pydicom's and the OS's errors as ``dcmread`` raises them.
    """
    syntax, start = _meta_syntax(path)
    if syntax != DeflatedExplicitVRLittleEndian:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels,
                               specific_tags=specific_tags, defer_size="1 MB")
    return _read_deflated(path, start, stop_before_pixels, specific_tags, max_pixels)


def _read_deflated(
    path: Path,
    start: int,
    stop_before_pixels: bool,
    specific_tags: list[str] | list[BaseTag] | None,
    max_pixels: int,
) -> pydicom.Dataset:
    raw = path.read_bytes()
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        head = inflater.decompress(raw[start:], HEADER_INFLATE_BYTES)
    except zlib.error as exc:
        raise DicomError(f"{path.name}: deflated dataset does not inflate ({exc})") from None
    tags: list[BaseTag | int] | None = None
    if specific_tags is not None:
        tags = [*(Tag(keyword) for keyword in specific_tags), _CHARSET_TAG]
    header = read_dataset(io.BytesIO(head), False, True, stop_when=_stop_at_pixels,
                          specific_tags=tags)
    if stop_before_pixels:
        return _file_dataset(path, raw, header)
    pixel_bytes = check_dataset_size(header, max_pixels, path.name)
    limit = len(head) + pixel_bytes + HEADER_INFLATE_BYTES
    try:
        rest = inflater.decompress(inflater.unconsumed_tail, limit - len(head) + 1)
    except zlib.error as exc:
        raise DicomError(f"{path.name}: deflated dataset does not inflate ({exc})") from None
    if len(head) + len(rest) > limit:
        raise ImageTooLargeError(
            f"{path.name}: the deflated dataset inflates to more than the {limit:,} bytes "
            f"its header declares; not decoded"
        )
    return _file_dataset(path, raw, read_dataset(io.BytesIO(head + rest), False, True))


def _file_dataset(path: Path, raw: bytes, dataset: Any) -> pydicom.Dataset:
    return FileDataset(str(path), dataset, raw[:128], read_file_meta_info(path), False, True)


def check_max_pixels(max_pixels: int) -> None:
    """``--max-pixels`` (convert, predict): the largest image decoded, in pixel samples.

    Raises:
        ConfigError: below 1.
    """
    if max_pixels < 1:
        raise ConfigError(
            f"--max-pixels must be >= 1 pixel samples (default {DEFAULT_MAX_PIXELS:,} = "
            f"4096 x 4096 x 3), got {max_pixels}"
        )
