"""Opening a file that may be a DICOM structured report, defensively: is it an SR (by its
content, never its name), and its data set, refused with a reason (an
:class:`~detect.errors.AnnotationError` of kind ``unreadable-sr``) when it is too big, has
too many sequence items to parse in reasonable time, is deflated (size unknown until
inflated) or truncated (pydicom would silently drop what the cut removed)."""

from __future__ import annotations

import struct
import warnings
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
)

from detect.errors import AnnotationError

#: Structured report storage classes that can hold a TID 1500 measurement report
#: (Basic Text, Enhanced, Comprehensive, Comprehensive 3D, Extensible SR).
SR_STORAGE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.88.11",
        "1.2.840.10008.5.1.4.1.1.88.22",
        "1.2.840.10008.5.1.4.1.1.88.33",
        "1.2.840.10008.5.1.4.1.1.88.34",
        "1.2.840.10008.5.1.4.1.1.88.35",
    }
)
#: IDC's SR of a series with 64 boxes and 168 slices is 94 kB; 8 MiB is 80 times that.
MAX_SR_BYTES = 8 << 20
#: Sequence items in the whole file: about 23 per measurement group and 1 per evidence
#: image (that same SR has 1,206). Parsing takes 0.1-0.4 ms per item.
MAX_SR_ITEMS = 40_000
_ITEM_TAGS = (b"\xfe\xff\x00\xe0", b"\xff\xfe\xe0\x00")  # (FFFE,E000) little / big endian
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                       b"UR", b"UT", b"UV"})


def refuse_sr(detail: str) -> AnnotationError:
    """The error of an SR file that cannot be used (kind ``unreadable-sr``)."""
    return AnnotationError("unreadable-sr", detail)


def is_sr_file(path: Path) -> bool:
    """True when ``path`` is a DICOM file holding a structured report, by its content.

    Reads the file meta group (the Media Storage SOP Class UID) and, when that does not
    say, the SOP Class UID and Modality of the data set. Anything unreadable is False.
    """
    try:
        if path.stat().st_size < 132:
            return False
        with open(path, "rb") as handle:
            handle.seek(128)
            if handle.read(4) != b"DICM":
                return False
        meta = pydicom.filereader.read_file_meta_info(path)
        if str(meta.get("MediaStorageSOPClassUID", "")) in SR_STORAGE_CLASSES:
            return True
        if path.stat().st_size > MAX_SR_BYTES:
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a broken file is simply not an SR
            ds = pydicom.dcmread(
                path, stop_before_pixels=True, specific_tags=["SOPClassUID", "Modality"]
            )
    except (OSError, EOFError, ValueError, TypeError, KeyError, AttributeError,
            InvalidDicomError, RecursionError):
        return False
    return str(ds.get("SOPClassUID", "")) in SR_STORAGE_CLASSES or str(
        ds.get("Modality", "")
    ).strip() == "SR"


def _truncation(raw: bytes, transfer_syntax: str) -> str | None:
    """Where the top-level elements' declared lengths run past the end of the file.

    pydicom reads a defined-length sequence that the file cuts short without a word,
    which would silently lose the groups after the cut. Stops (None) at the first
    undefined length: pydicom warns about a missing delimiter there.
    """
    if len(raw) < 144 or raw[132:136] != b"\x02\x00\x00\x00":  # no meta group length
        return None
    offset = 144 + struct.unpack_from("<I", raw, 140)[0]
    implicit = transfer_syntax == ImplicitVRLittleEndian
    order = ">" if transfer_syntax == ExplicitVRBigEndian else "<"
    while offset + 8 <= len(raw):
        group, element = struct.unpack_from(order + "HH", raw, offset)
        vr = raw[offset + 4 : offset + 6]
        if implicit:
            header, length = 8, struct.unpack_from("<I", raw, offset + 4)[0]
        elif vr in _LONG_VRS:
            if offset + 12 > len(raw):
                return f"the file ends inside the header of ({group:04X},{element:04X})"
            header, length = 12, struct.unpack_from(order + "I", raw, offset + 8)[0]
        else:
            header, length = 8, struct.unpack_from(order + "H", raw, offset + 6)[0]
        if length == 0xFFFFFFFF:
            return None
        end = offset + header + length
        if end > len(raw):
            return (f"truncated: ({group:04X},{element:04X}) declares {length} bytes, the "
                    f"file ends {len(raw) - offset - header} bytes into it")
        offset = end
    return None if offset == len(raw) else "truncated inside an element header"


def read_sr_dataset(path: Path) -> Dataset:
    """The data set of an SR file, every check above passed.

    Raises:
        AnnotationError: kind ``unreadable-sr``, with the reason.
    """
    try:
        size = path.stat().st_size
        if size > MAX_SR_BYTES:
            raise refuse_sr(
                f"file is {size} bytes, over the {MAX_SR_BYTES} byte limit for an SR; "
                "refused unread"
            )
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SR_BYTES + 1)
    except OSError as exc:
        raise refuse_sr(f"cannot read: {exc.strerror}") from None
    items = sum(raw.count(tag) for tag in _ITEM_TAGS)
    if items > MAX_SR_ITEMS:
        raise refuse_sr(
            f"{items} sequence items, over the {MAX_SR_ITEMS} limit for a measurement "
            "report; refused before parsing"
        )
    try:
        meta = pydicom.filereader.read_file_meta_info(path)
        syntax = str(meta.get("TransferSyntaxUID", ""))
        if syntax == DeflatedExplicitVRLittleEndian:
            raise refuse_sr("deflated transfer syntax: size unknown until inflated; refused")
        try:
            cut = _truncation(raw, syntax)
        except struct.error:
            cut = "truncated inside an element header"
        if cut is not None:
            raise refuse_sr(cut)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(BytesIO(raw))
            ds.get("ContentSequence")  # sequences are parsed on first access
        for warning in caught:
            if "End of file" in str(warning.message):
                raise refuse_sr(f"truncated: {warning.message}")
        return ds
    except InvalidDicomError:
        raise refuse_sr("not a DICOM file (no DICM preamble)") from None
    except OSError as exc:
        raise refuse_sr(f"cannot read: {exc.strerror}") from None
    except (EOFError, ValueError, TypeError, KeyError, AttributeError, NotImplementedError,
            RecursionError, OverflowError) as exc:
        raise refuse_sr(f"cannot parse as DICOM ({type(exc).__name__}: {exc})") from None
