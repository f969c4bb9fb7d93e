"""The SR of a series: every box carries the geometric purpose "Bounded by" (as IDC's SRs
do; 3D Slicer reads a POLYLINE as a box only then), and its UIDs are derived from the
model and the slices read, so the same result has the same identity (--push relies on it)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import highdicom as hd
import pytest
from support.yolo import write_ct_series

from detect.io.dicom import read_header
from detect.predict.sources import Series
from detect.predict.sr import SrModel, build_series_sr, model_key
from detect.predict.writers import SliceResult
from detect.predictions import Prediction

KEY = "k" * 64


def _series_and_results(folder: Path, slices: int = 3) -> tuple[Series, list[SliceResult]]:
    headers = [read_header(p) for p in write_ct_series(folder, slices=slices)]
    results = []
    for k, header in enumerate(headers):
        prediction = Prediction(
            sop_instance_uid=header.sop_instance_uid,
            series_instance_uid=header.series_instance_uid, patient_id="A0001",
            xyxy=(4.0, 5.0, 20.0, 30.5), score=0.8, label="tumor", category_id=1)
        results.append(SliceResult("A0001", header.series_instance_uid,
                                   header.sop_instance_uid, k, k + 1, str(header.path), 64, 64,
                                   [prediction]))
    return Series(headers[0].series_instance_uid, "A0001", "", tuple(headers)), results


def _groups(sr: Any) -> list[Any]:
    """The planar ROI groups, as a reader sees them (the SR written and read back)."""
    buffer = io.BytesIO()
    sr.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return list(hd.sr.srread(buffer).content.get_planar_roi_measurement_groups())


def _uids(sr: Any) -> tuple[str, str, tuple[str, ...]]:
    groups = _groups(sr)
    return (str(sr.SeriesInstanceUID), str(sr.SOPInstanceUID),
            tuple(str(g.tracking_uid) for g in groups))


def test_every_box_is_bounded_by(tmp_path: Path) -> None:
    series, results = _series_and_results(tmp_path / "ct")
    sr = build_series_sr(series, results, SrModel("yolov8", "run", 0.25, KEY))
    (measurements,) = [item for item in sr.ContentSequence
                       if item.ConceptNameCodeSequence[0].CodeValue == "126010"]
    groups = measurements.ContentSequence
    assert len(groups) == 3
    for group in groups:
        purposes = [item for item in group.ContentSequence
                    if item.ConceptNameCodeSequence[0].CodeValue == "130400"]
        assert len(purposes) == 1
        code = purposes[0].ConceptCodeSequence[0]
        assert (code.CodingSchemeDesignator, code.CodeValue, code.CodeMeaning) == (
            "SCT", "75958009", "Bounded by")
        assert purposes[0].ConceptNameCodeSequence[0].CodingSchemeDesignator == "DCM"
        assert purposes[0].RelationshipType == "CONTAINS"


def test_the_same_model_on_the_same_slices_gives_the_same_uids(tmp_path: Path) -> None:
    series, results = _series_and_results(tmp_path / "ct")
    first = _uids(build_series_sr(series, results, SrModel("yolov8", "run", 0.25, KEY)))
    again = _uids(build_series_sr(series, results, SrModel("yolov8", "other-name", 0.25, KEY)))
    assert first == again
    assert len({first[0], first[1], *first[2]}) == 2 + len(first[2])  # all distinct
    other_model = _uids(build_series_sr(series, results,
                                        SrModel("yolov8", "run", 0.25, "m" * 64)))
    fewer_slices = _uids(build_series_sr(series, results[:2],
                                         SrModel("yolov8", "run", 0.25, KEY)))
    for other in (other_model, fewer_slices):
        assert not {first[0], first[1], *first[2]} & {other[0], other[1], *other[2]}


def test_the_model_key_follows_the_weights_threshold_head_and_postprocessing(
        tmp_path: Path) -> None:
    weights, head = tmp_path / "best.pt", tmp_path / "head.pt"
    weights.write_bytes(b"weights")
    head.write_bytes(b"head")
    key = model_key("yolov8", weights, 0.25)
    assert key == model_key("yolov8", weights, 0.25)
    assert len({key, model_key("yolov8", weights, 0.3), model_key("yolo11", weights, 0.25),
                model_key("yolov8", weights, 0.25, head),
                model_key("yolov8", weights, 0.25, postprocess="lung field off")}) == 5
    weights.write_bytes(b"retrained")
    assert model_key("yolov8", weights, 0.25) != key


@pytest.mark.parametrize("slices", [1])
def test_a_one_slice_series_still_gets_its_purpose(tmp_path: Path, slices: int) -> None:
    series, results = _series_and_results(tmp_path / "ct", slices)
    sr = build_series_sr(series, results, SrModel("yolov8", "run", 0.25, KEY))
    assert len(_groups(sr)) == 1
