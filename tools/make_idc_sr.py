"""Make Imaging Data Commons style DICOM SRs of a Lung-PET-CT-Dx tree's VOC boxes.

One Comprehensive 3D SR per annotated CT series, as IDC made the collection's
``lung_pet_ct_dx_annotations`` (see detect/io/idc_sr.py for the recipe and its two
deliberate differences), written to ``OUT/<PatientID>/<SeriesInstanceUID>.dcm``. The
DICOM tree is indexed by header (never by names); an XML is matched to its slice by its
``<SOPInstanceUID>.xml`` name, as the archive links them. Nothing outside OUT is written
and an existing file in OUT is not replaced unless --overwrite.

usage: python tools/make_idc_sr.py DICOM_ROOT ANNOTATION_ROOT OUT [--overwrite] [--workers N]
example: python tools/make_idc_sr.py ~/tcia/Lung-PET-CT-Dx ~/tcia/Annotation /tmp/idc-sr
         detect convert ~/tcia/Lung-PET-CT-Dx /tmp/idc-sr data/lung-from-sr
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from detect.convert.index import build_index
from detect.errors import DetectError
from detect.io.idc_sr import SliceRef, write_idc_srs


def slice_refs(dicom_root: Path, *, workers: int = 1) -> dict[str, SliceRef]:
    """SOPInstanceUID → its series, patient and the series' files, for every CT slice."""
    index = build_index(dicom_root, workers=workers)
    refs: dict[str, SliceRef] = {}
    for series_uid, slices in index.series().items():
        files = tuple(h.path for h in slices)
        for header in slices:
            refs[header.sop_instance_uid] = SliceRef(series_uid, header.patient_id, files)
    return refs


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dicom_root", type=Path)
    parser.add_argument("annotation_root", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--overwrite", action="store_true", help="replace existing SR files")
    parser.add_argument("--workers", type=int, default=1, help="header-reading processes")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    for name in ("dicom_root", "annotation_root"):
        if not getattr(args, name).is_dir():
            print(f"error: {name.upper()} {getattr(args, name)} is not a folder", file=sys.stderr)
            return 2
    try:
        refs = slice_refs(args.dicom_root, workers=max(1, args.workers))
        result = write_idc_srs(args.annotation_root, refs, args.out, overwrite=args.overwrite)
    except (DetectError, FileExistsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(result.written)} SR files, {result.boxes} boxes, under {args.out}")
    for rel, why in result.skipped:
        print(f"skipped {rel}: {why}")
    print(f"{len(result.skipped)} XML files skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
