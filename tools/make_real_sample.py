"""Rebuild the repository's real CT sample from the shared Lung-PET-CT-Dx patients.

The sample is patient A0002's B40f series (30 slices, Siemens, 8 mm) re-encoded as JPEG
2000 lossless (pylibjpeg-openjpeg; 5.2 MB instead of 15.8 MB), in the TCIA folder layout,
and that series' 10 original VOC XML files, byte for byte:

    datasets/lung-pet-ct-dx/sample/Lung-PET-CT-Dx/Lung_Dx-A0002/<study>/<series>/1-NN.dcm
    datasets/lung-pet-ct-dx/sample/Annotation/A0002/<SOPInstanceUID>.xml

Every slice is checked after writing: its pixel data decodes bit-identical to the original
and every other data element is unchanged (only the transfer syntax differs). The sample
is for demos and tests; no model of this repository is trained on A0002.

usage: python tools/make_real_sample.py [--realdata ../shared/realdata] [--out DIR]
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import JPEG2000Lossless

REPO = Path(__file__).resolve().parents[1]
PATIENT = "A0002"
STUDY = "04-25-2007-NA-ThoraxAThoraxRoutine Adult-34834"
SERIES = "3.000000-ThoraxRoutine  8.0.0  B40f-10983"
SAMPLE = REPO / "datasets" / "lung-pet-ct-dx" / "sample"
#: The subfolders this script writes (and may replace); anything else in --out is left alone.
OWN = ("Lung-PET-CT-Dx", "Annotation")


def encode(source: Path) -> bytes:
    """One slice re-encoded as JPEG 2000 lossless, as a DICOM file's bytes."""
    ds = pydicom.dcmread(source)
    ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def check_same(original: Path, encoded: bytes) -> None:
    """Raise AssertionError unless ``encoded`` holds the same pixels and elements."""
    before = pydicom.dcmread(original)
    after = pydicom.dcmread(io.BytesIO(encoded))
    if after.file_meta.TransferSyntaxUID != JPEG2000Lossless:
        raise AssertionError(f"{original.name}: not JPEG 2000 lossless")
    if not np.array_equal(before.pixel_array, after.pixel_array):
        raise AssertionError(f"{original.name}: pixels differ after re-encoding")
    for element in before:
        if element.tag == 0x7FE00010:  # PixelData
            continue
        if element.tag not in after or after[element.tag].value != element.value:
            raise AssertionError(f"{original.name}: {element.keyword or element.tag} changed")


def series_sops(folder: Path) -> set[str]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
            for p in folder.glob("*.dcm")}


def build(realdata: Path, out: Path) -> dict[str, int]:
    """Write the sample into ``out``; returns counts and bytes."""
    root = realdata / f"lung-pet-ct-dx-{PATIENT}"
    series = root / "Lung-PET-CT-Dx" / f"Lung_Dx-{PATIENT}" / STUDY / SERIES
    if not series.is_dir():
        raise SystemExit(f"{series} not found: pass --realdata (the shared realdata folder)")
    for name in OWN:
        shutil.rmtree(out / name, ignore_errors=True)
    target = out / "Lung-PET-CT-Dx" / f"Lung_Dx-{PATIENT}" / STUDY / SERIES
    target.mkdir(parents=True)
    written = 0
    for source in sorted(series.glob("*.dcm")):
        data = encode(source)
        check_same(source, data)
        (target / source.name).write_bytes(data)
        written += len(data)
    sops = series_sops(series)
    annotations = out / "Annotation" / PATIENT
    annotations.mkdir(parents=True)
    xml = 0
    for source in sorted((root / "Annotation" / PATIENT).glob("*.xml")):
        if source.stem in sops:
            shutil.copyfile(source, annotations / source.name)
            xml += 1
    slices = len(list(target.glob("*.dcm")))
    return {"slices": slices, "xml": xml, "dicom_bytes": written}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument("--out", type=Path, default=SAMPLE)
    args = parser.parse_args(argv)
    counts = build(args.realdata, args.out)
    print(f"{counts['slices']} slices ({counts['dicom_bytes'] / 1e6:.1f} MB, JPEG 2000 lossless, "
          f"pixels checked bit-identical) and {counts['xml']} VOC XML files in {args.out}")
    if counts["slices"] != 30 or counts["xml"] != 10:
        sys.exit("expected 30 slices and 10 XML files: is --realdata the A0002 download?")


if __name__ == "__main__":
    main()
