"""Hostile and broken inputs for the reading side: a small phantom cohort to plant them in,
decompression bombs, and the CLI helpers the tests share."""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless, generate_uid
from typer.testing import CliRunner, Result

from detect.cli import app

#: The deflate bomb: 16384 x 16384 x 16 bits of zeros, about 0.5 MB deflated.
BOMB_SIDE = 16384
#: The RLE bomb declares 60000 x 60000.
RLE_BOMB_SIDE = 60000


@dataclass(frozen=True)
class Cohort:
    """A phantom cohort: its DICOM root, annotation root and its annotated slices
    (SOPInstanceUID -> DICOM path, XML path)."""

    dicom_root: Path
    annotation_root: Path

    def annotated(self) -> dict[str, tuple[Path, Path]]:
        xmls = {p.stem: p for p in self.annotation_root.rglob("*.xml")}
        out = {}
        for path in sorted(self.dicom_root.rglob("*.dcm")):
            uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            if uid in xmls:
                out[uid] = (path, xmls[uid])
        return out

    def copy(self, dest: Path) -> Cohort:
        shutil.copytree(self.dicom_root, dest / "dicom", symlinks=True)
        shutil.copytree(self.annotation_root, dest / "ann", symlinks=True)
        return Cohort(dest / "dicom", dest / "ann")


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    """3 phantom patients, 8 uncompressed CT slices of 64 px, 12 XMLs (read-only!)."""
    from detect.synth.cohort import SynthConfig, synthesize

    summary = synthesize(
        tmp_path_factory.mktemp("small"),
        SynthConfig(patients=3, slices=8, size=64, pet=False, fused=False, compression="none"),
    )
    return Cohort(summary.dicom_root, summary.annotation_root)


runner = CliRunner()


def run_cli(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result: Result, *expected: str) -> str:
    """The single error line of a failed command (exit 1), checked for ``expected``."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def rewrite(path: Path, **changes: object) -> None:
    """Change header values of a DICOM file in place (None deletes the element)."""
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)


def _as_bomb(like: Path, side: int, sop_uid: str) -> pydicom.Dataset:
    ds = pydicom.dcmread(like)
    ds.Rows = ds.Columns = side
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    return ds


def write_rle_bomb(path: Path, like: Path, sop_uid: str) -> None:
    """A small RLE slice of ``like``'s series that declares 60000 x 60000 pixels."""
    ds = _as_bomb(like, RLE_BOMB_SIDE, sop_uid)
    segment = b"\x81\x00" * 2000  # 2000 runs of 128 zero bytes
    frame = struct.pack("<16I", 2, 64, 64 + len(segment), *[0] * 13) + segment * 2
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.save_as(path, enforce_file_format=True)


def write_deflate_bomb(
    path: Path, like: Path, sop_uid: str, *, side: int = BOMB_SIDE,
    declared_side: int | None = None,
) -> None:
    """A Deflated Explicit VR Little Endian slice of ``like``'s series holding
    ``side`` x ``side`` x 16 bits of zeros (by default 16384: about 0.5 MB on disk, 512 MiB
    inflated). With ``declared_side`` its header lies about the size."""
    ds = _as_bomb(like, declared_side or side, sop_uid)
    del ds.PixelData
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    plain = io.BytesIO()
    ds.save_as(plain, enforce_file_format=True)
    raw = plain.getvalue()
    start = 144 + struct.unpack_from("<I", raw, 140)[0]  # preamble, DICM, group length
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    meta = io.BytesIO()
    ds.save_as(meta, enforce_file_format=True)  # deflated header, for its meta only
    meta_raw = meta.getvalue()
    meta_end = 144 + struct.unpack_from("<I", meta_raw, 140)[0]
    pixel_bytes = side * side * 2
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = deflater.compress(
        raw[start:] + b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", pixel_bytes)
    ) + deflater.flush(zlib.Z_FULL_FLUSH)
    # after a full flush the compressor forgets its window, so every 1 MiB of zeros
    # deflates to the same bytes: deflate one and repeat it
    zeros = 1 << 20
    chunk = deflater.compress(bytes(zeros)) + deflater.flush(zlib.Z_FULL_FLUSH)
    tail = deflater.flush()
    path.write_bytes(meta_raw[:meta_end] + head + chunk * (pixel_bytes // zeros) + tail)


def new_uid(tag: str) -> str:
    return str(generate_uid(entropy_srcs=[tag]))


@dataclass(frozen=True)
class Bombs:
    """Two decompression bombs in the series of ``like`` (a slice of the small cohort)."""

    rle: Path
    deflate: Path
    like: Path


@pytest.fixture(scope="session")
def bombs(small_cohort: Cohort, tmp_path_factory: pytest.TempPathFactory) -> Bombs:
    """The two bombs, made once (read-only!)."""
    folder = tmp_path_factory.mktemp("bombs")
    like = sorted(small_cohort.dicom_root.rglob("*.dcm"))[0]
    write_rle_bomb(folder / "rle.dcm", like, new_uid("rle-bomb"))
    write_deflate_bomb(folder / "deflate.dcm", like, new_uid("deflate-bomb"))
    return Bombs(folder / "rle.dcm", folder / "deflate.dcm", like)
