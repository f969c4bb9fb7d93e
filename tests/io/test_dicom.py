from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from detect.errors import DicomError
from detect.io.dicom import NotDicomError, read_header, read_hu
from detect.io.slice_order import sort_slices


def _ct_small() -> pydicom.Dataset:
    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))


def test_signed_and_unsigned_storage_give_the_same_hu(tmp_path):
    ds = _ct_small()  # signed, intercept from the file
    signed_path = tmp_path / "signed.dcm"
    ds.save_as(signed_path)
    hu = read_hu(signed_path)
    assert ds.PixelRepresentation == 1
    # re-store as the scanners in the collection do: unsigned, intercept -1024
    unsigned = ds.copy()
    stored = np.rint((hu - (-1024.0)) / 1.0).astype(np.uint16)
    unsigned.PixelRepresentation = 0
    unsigned.RescaleIntercept = -1024
    unsigned.RescaleSlope = 1
    unsigned.PixelData = stored.tobytes()
    unsigned_path = tmp_path / "unsigned.dcm"
    unsigned.save_as(unsigned_path)
    assert np.array_equal(read_hu(unsigned_path), hu)


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_compressed_slices_give_the_same_hu(tmp_path, syntax):
    ds = _ct_small()
    plain = tmp_path / "plain.dcm"
    ds.save_as(plain)
    compressed = ds.copy()
    compressed.compress(syntax)
    path = tmp_path / "compressed.dcm"
    compressed.save_as(path)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(read_hu(path), read_hu(plain))


def test_pydicom_compressed_test_files_decode():
    reference = read_hu(Path(get_testdata_file("MR_small.dcm")))
    for name in ("MR_small_RLE.dcm", "MR_small_jp2klossless.dcm"):
        assert np.array_equal(read_hu(Path(get_testdata_file(name))), reference)


def test_header_has_no_pixels_and_sort_uses_geometry(tmp_path):
    ds = _ct_small()
    paths = []
    for i, z in enumerate([30.0, 10.0, 20.0]):
        ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[str(i)])
        ds.ImagePositionPatient = [0, 0, z]
        ds.InstanceNumber = i + 1  # numbering disagrees with geometry
        path = tmp_path / f"{i}.dcm"
        ds.save_as(path)
        paths.append(path)
    headers = [read_header(p) for p in paths]
    assert all(h.is_ct and not h.is_fused for h in headers)
    ordered = sort_slices(headers)
    assert [h.position[2] for h in ordered] == [10.0, 20.0, 30.0]


def test_not_dicom_and_unsupported(tmp_path):
    text = tmp_path / "notes.dcm"
    text.write_text("hello")
    with pytest.raises(NotDicomError, match="not a DICOM"):
        read_header(text)
    ds = _ct_small()
    del ds.Rows
    del ds.PixelData
    path = tmp_path / "norows.dcm"
    ds.save_as(path)
    with pytest.raises(DicomError, match="Rows"):
        read_header(path)


def test_truncated_pixels_raise_dicom_error(tmp_path):
    raw = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    path = tmp_path / "truncated.dcm"
    path.write_bytes(raw[: len(raw) - 4000])
    read_header(path)  # the header is intact
    with pytest.raises(DicomError):
        read_hu(path)


def test_fused_secondary_capture_detected(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("SC_rgb_small_odd.dcm"))
    ds.Modality = "CT"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / "fused.dcm"
    ds.save_as(path)
    header = read_header(path)
    assert header.is_fused and not header.is_ct


@pytest.mark.filterwarnings("ignore:Found unknown escape sequence")
@pytest.mark.parametrize(
    "raw",
    [b" AB ", b"AB\x00", b"A\\B ", b"  ", b"X Y  ", b"\x1b$B\x30\x21", "Zoë".encode("latin-1")],
)
def test_header_text_fast_path_reads_as_pydicom_does(raw: bytes) -> None:
    from pydicom.dataelem import RawDataElement
    from pydicom.dataset import Dataset
    from pydicom.tag import Tag

    from detect.io.dicom import _value

    def dataset() -> Dataset:
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 100"
        tag = Tag(0x00100020)  # PatientID, LO
        ds._dict[tag] = RawDataElement(tag, "LO", len(raw), raw, 0, False, True)
        return ds

    assert _value(dataset(), "PatientID") == dataset()[0x00100020].value
