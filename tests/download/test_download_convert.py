"""A downloaded tree is a DICOM root ``detect convert`` reads: the phantom cohort, put in
a local bucket as IDC lays out a collection, downloaded through the CLI and converted,
gives the same images and boxes as the cohort converted where it was written."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from pathlib import Path

import pydicom
import pytest
from support.idc import BUCKET, index_row, write_index
from typer.testing import CliRunner

from detect.cli import app

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "lung-pet-ct-dx-A0002"


def cohort_as_idc(dicom_root: Path, s3, index_path: Path) -> int:
    """Upload every file of the cohort under ``<uuid>/<uuid>.dcm``; write its index."""
    series: dict[tuple[str, str, str, str], list[Path]] = defaultdict(list)
    for path in sorted(dicom_root.rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        series[(ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality)].append(path)
    rows = []
    for (patient, study, series_uid, modality), paths in series.items():
        url = f"s3://{BUCKET}/{uuid.uuid4()}/*"
        s3.put_series(url, (p.read_bytes() for p in paths))
        size_mb = sum(p.stat().st_size for p in paths) / 1e6
        rows.append(index_row(patient, study, series_uid, modality, len(paths),
                              size_mb=size_mb, source_url=url))
    write_index(index_path, rows)
    return sum(len(paths) for paths in series.values())


def coco_images(dataset: Path) -> dict[str, set[tuple[str, int]]]:
    """Split → {(sop_instance_uid, number of boxes)} from the dataset's COCO files."""
    result = {}
    for coco_file in sorted((dataset / "coco").glob("*.json")):
        coco = json.loads(coco_file.read_text())
        boxes: dict[int, int] = defaultdict(int)
        for annotation in coco["annotations"]:
            boxes[annotation["image_id"]] += 1
        result[coco_file.stem] = {(image["sop_instance_uid"], boxes[image["id"]])
                                  for image in coco["images"]}
    return result


def test_downloaded_cohort_converts_like_the_original(
    cohort, dataset: Path, local_s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import idc_index_data

    from detect.convert import convert
    from detect.convert.config import ConvertConfig

    index = tmp_path / "index.parquet"
    files = cohort_as_idc(cohort.dicom_root, local_s3, index)
    monkeypatch.setattr(idc_index_data, "IDC_INDEX_PARQUET_FILEPATH", index)
    out = tmp_path / "idc"
    result = CliRunner().invoke(app, ["download", str(out), "--modality", "CT,PT",
                                      "--endpoint", local_s3.endpoint])
    assert result.exit_code == 0, result.stderr
    assert f"downloaded {files} files" in result.stdout

    converted = convert(ConvertConfig(out / "lung_pet_ct_dx", cohort.annotation_root,
                                      tmp_path / "dataset", workers=1))
    original = coco_images(dataset)
    assert converted.images == sum(len(images) for images in original.values()) > 0
    assert coco_images(tmp_path / "dataset") == original


@pytest.fixture
def real_a0002() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real sample not found at {REALDATA}")
    return REALDATA


def test_real_patient_downloads_and_converts(
    real_a0002: Path, local_s3, tmp_path: Path
) -> None:
    """Lung_Dx-A0002's two real CT series, served as IDC serves them (the index's
    selection and URLs; TCIA's files, whose byte sums equal the index's sizes), come
    down whole and convert with the real VOC boxes: 18 images, 18 boxes."""
    pytest.importorskip("idc_index_data", reason="idc-index is not installed")
    from detect.convert import convert
    from detect.convert.config import ConvertConfig
    from detect.download import DownloadConfig, select_series

    files: dict[str, list[Path]] = defaultdict(list)
    for path in sorted((real_a0002 / "Lung-PET-CT-Dx").rglob("*.dcm")):
        files[pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID].append(path)
    config = DownloadConfig(out=tmp_path / "idc", patients=("Lung_Dx-A0002",),
                            modalities=("CT",), endpoint=local_s3.endpoint)
    selection = select_series(config)
    for entry in selection.series:
        paths = files[entry.series_uid]
        assert (len(paths), sum(p.stat().st_size for p in paths)) == (
            entry.instances, entry.size_bytes)
        local_s3.put_series(entry.source_url, (p.read_bytes() for p in paths))

    result = CliRunner().invoke(app, ["download", str(config.out), "--patients", "A0002",
                                      "--modality", "CT", "--endpoint", local_s3.endpoint])
    assert result.exit_code == 0, result.stderr
    assert "downloaded 60 files (31.6 MB) for 2 series" in result.stdout
    summary = convert(ConvertConfig(config.out / "lung_pet_ct_dx", real_a0002 / "Annotation",
                                    tmp_path / "dataset", workers=1))
    assert (summary.images, summary.boxes) == (18, 18)
    assert summary.issue_counts == {}
