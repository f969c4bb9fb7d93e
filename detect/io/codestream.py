"""The size a compressed frame declares, read from its own header bytes before decoding.

A decoder allocates what the codestream says, not what Rows and Columns say: a 30 kB
JPEG 2000 slice listed as 128 x 128 whose SIZ marker declares 30000 x 30000 decodes to
gigabytes however small ``--max-pixels`` is. So before any encapsulated frame is decoded,
its first fragment's header is parsed here (only the header bytes; nothing is decoded to
find out) and compared with the dataset's Rows, Columns and SamplesPerPixel:

- JPEG (baseline, extended, lossless) and JPEG-LS: the frame header (SOFn, or SOF55 for
  JPEG-LS) gives lines, samples per line and components;
- JPEG 2000 and HTJ2K (raw codestream or JP2 file): SIZ gives the image area, the tile
  grid (at most 65535 tiles, as the standard allows) and components;
- RLE Lossless: the segment count must be SamplesPerPixel x bytes per sample and every
  segment offset must lie inside the fragment, in order (each segment decodes to at most
  Rows x Columns bytes, so the declared size bounds it).

A codestream larger than the header (or than ``max_pixels``) is
:class:`~detect.io.dicom_limits.ImageTooLargeError`; one that differs otherwise, or
whose header cannot be parsed, is a :class:`~detect.errors.DicomError`. Encapsulated
transfer syntaxes not listed here are refused: their size cannot be checked.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from pydicom.uid import UID

from detect.errors import DicomError
from detect.io.dicom_limits import ImageTooLargeError, declared_samples

JPEG = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
                  "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"})
JPEG_LS = frozenset({"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})
JPEG_2000 = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
                       "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                       "1.2.840.10008.1.2.4.203"})
RLE = "1.2.840.10008.1.2.5"
#: Header bytes parsed at most (JPEG APPn segments before the frame header included).
HEADER_BYTES = 1 << 20
_ITEM = b"\xfe\xff\x00\xe0"
#: JPEG frame-header markers: SOF0-3, 5-7, 9-11, 13-15, and JPEG-LS SOF55.
_SOF = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC),
                  *range(0xCD, 0xD0), 0xF7})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_MAX_TILES = 65535


@dataclass(frozen=True)
class FrameSize:
    """What a codestream declares: rows, columns, components."""

    rows: int
    columns: int
    components: int


def _refuse(name: str, what: str, detail: str) -> DicomError:
    return DicomError(f"{name}: {what} {detail}; not decoded")


def first_fragment(pixel_data: bytes, name: str) -> bytes:
    """The first fragment of encapsulated pixel data (after the basic offset table), cut
    to :data:`HEADER_BYTES`.

    Raises:
        DicomError: the items are not where the encapsulation puts them.
    """
    position = 0
    for item in ("basic offset table", "first fragment"):
        if pixel_data[position:position + 4] != _ITEM or len(pixel_data) < position + 8:
            raise _refuse(name, "encapsulated pixel data without its", item)
        (length,) = struct.unpack_from("<I", pixel_data, position + 4)
        if item == "first fragment":
            return pixel_data[position + 8:position + 8 + min(length, HEADER_BYTES)]
        position += 8 + length
    raise AssertionError("unreachable")


def jpeg_size(data: bytes) -> FrameSize | None:
    """The frame header of a JPEG or JPEG-LS stream, or None when there is none before
    the scan (or the bytes end)."""
    if data[:2] != b"\xff\xd8":
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        (length,) = struct.unpack_from(">H", data, position + 2)
        if marker in _SOF:
            if position + 10 > len(data):
                return None
            rows, columns = struct.unpack_from(">HH", data, position + 5)
            return FrameSize(rows, columns, data[position + 9])
        if marker == 0xDA or length < 2:  # a scan before any frame header
            return None
        position += 2 + length
    return None


def _jp2_codestream(data: bytes) -> bytes | None:
    position = 0
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        header = 8
        if length == 1:
            if position + 16 > len(data):
                return None
            (length,) = struct.unpack_from(">Q", data, position + 8)
            header = 16
        if kind == b"jp2c":
            return data[position + header:]
        if length < header:  # 0: "to the end of the file", which the codestream is not
            return None
        position += length
    return None


def j2k_size(data: bytes) -> FrameSize | None:
    """The image area and components of a JPEG 2000 codestream (SIZ), or None.

    Raises:
        DicomError: SIZ declares an impossible tile grid or sub-sampling.
    """
    if data.startswith(_JP2_SIGNATURE):
        found = _jp2_codestream(data)
        if found is None:
            return None
        data = found
    if data[:4] != b"\xff\x4f\xff\x51" or len(data) < 4 + 38:
        return None
    (xsiz, ysiz, xo, yo, xt, yt, xto, yto) = struct.unpack_from(">8I", data, 8)
    (components,) = struct.unpack_from(">H", data, 40)
    if not (xo < xsiz and yo < ysiz and xt and yt and xto <= xo and yto <= yo):
        raise DicomError(f"JPEG 2000 SIZ declares an impossible image or tile grid "
                         f"({xsiz}x{ysiz} from {xo},{yo}; tiles {xt}x{yt} from {xto},{yto})")
    tiles = -(-(xsiz - xto) // xt) * -(-(ysiz - yto) // yt)
    if tiles > _MAX_TILES:
        raise DicomError(f"JPEG 2000 SIZ declares {tiles:,} tiles; the standard allows "
                         f"{_MAX_TILES:,}")
    sub = data[42:42 + 3 * components]
    if len(sub) < 3 * components or any(sub[i] == 0 for i in range(len(sub)) if i % 3):
        raise DicomError("JPEG 2000 SIZ has a component with no sub-sampling factor")
    return FrameSize(ysiz - yo, xsiz - xo, components)


def _rle_check(data: bytes, ds: Any, name: str) -> None:
    if len(data) < 64:
        raise _refuse(name, "RLE frame", f"of {len(data)} bytes has no 64-byte header")
    count, *offsets = struct.unpack_from("<16I", data, 0)
    samples = _int(ds, "SamplesPerPixel", 1)
    expected = samples * ((_int(ds, "BitsAllocated", 8) + 7) // 8)
    if count != expected or not 1 <= count <= 15:
        raise _refuse(name, "RLE frame", f"has {count} segments; SamplesPerPixel {samples} "
                      f"and BitsAllocated need {expected}")
    used = offsets[:count]
    if used[0] != 64 or any(b <= a for a, b in pairwise(used)) or used[-1] >= len(data):
        raise _refuse(name, "RLE frame", f"has segment offsets {used} outside its "
                      f"{len(data)} bytes or out of order")


def _int(ds: Any, keyword: str, default: int) -> int:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def check_codestream(ds: Any, max_pixels: int, name: str) -> None:
    """Compare what an encapsulated frame declares with the dataset (module docstring);
    native and deflated pixel data pass (their size is the header's).

    Raises:
        ImageTooLargeError: the codestream declares more than the header or ``max_pixels``.
        DicomError: it declares another size, cannot be parsed, or is of a compressed
            transfer syntax whose size cannot be checked.
    """
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    pixel = ds.get("PixelData") if "PixelData" in ds else None
    if pixel is None or not _encapsulated(syntax):
        return
    data = first_fragment(bytes(pixel), name)
    if syntax == RLE:
        _rle_check(data, ds, name)
        return
    if syntax in JPEG or syntax in JPEG_LS:
        size, what = jpeg_size(data), "JPEG frame header (SOF)"
    elif syntax in JPEG_2000:
        try:
            size, what = j2k_size(data), "JPEG 2000 SIZ marker"
        except DicomError as exc:
            raise _refuse(name, "its codestream:", str(exc)) from None
    else:
        raise _refuse(name, f"compressed transfer syntax {syntax}", "is not read (its "
                      "size cannot be checked before decoding)")
    if size is None:
        raise _refuse(name, "no", f"{what} in the first {len(data):,} bytes of its frame")
    _compare(size, ds, max_pixels, name)


def _encapsulated(syntax: str) -> bool:
    return bool(syntax) and UID(syntax).is_encapsulated


def _compare(size: FrameSize, ds: Any, max_pixels: int, name: str) -> None:
    rows, columns = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    samples = _int(ds, "SamplesPerPixel", 1)
    said = f"its codestream declares {size.rows} x {size.columns} x {size.components}"
    header = f"the header {rows} x {columns} x {samples}"
    total = declared_samples(size.rows, size.columns, size.components, 1)
    if total > max_pixels:
        raise ImageTooLargeError(f"{name}: {said} = {total:,} pixel samples, over the limit "
                                 f"of {max_pixels:,}; not decoded")
    if size.rows > rows or size.columns > columns or size.components > samples:
        raise ImageTooLargeError(f"{name}: {said}, more than {header}; not decoded")
    if (size.rows, size.columns, size.components) != (rows, columns, samples):
        raise DicomError(f"{name}: {said}, but {header}; not decoded")
