"""Non-finite VOC coordinates are kept for the caller to call the box invalid."""

from __future__ import annotations

import math

import pytest

from detect.boxes import clip_xyxy
from detect.errors import AnnotationError
from detect.io.voc import parse_voc_bytes


def _voc(xmin: str = "10", width: str = "64") -> bytes:
    return (
        f"<annotation><size><width>{width}</width><height>64</height><depth>1</depth></size>"
        f"<object><name>A</name><bndbox><xmin>{xmin}</xmin><ymin>10</ymin><xmax>20</xmax>"
        f"<ymax>20</ymax></bndbox></object></annotation>"
    ).encode()


@pytest.mark.parametrize("value", ["inf", "-inf", "1e400", "nan", "Infinity", "-1e999"])
def test_a_non_finite_corner_is_kept_and_the_box_is_invalid(value):
    (obj,) = parse_voc_bytes(_voc(xmin=value)).objects
    assert not math.isfinite(obj.xyxy[0])
    assert not clip_xyxy(obj.xyxy, 64, 64).valid


def test_finite_corners_are_rounded_as_before():
    (obj,) = parse_voc_bytes(_voc(xmin="10.6")).objects
    assert obj.xyxy == (11.0, 10.0, 20.0, 20.0)
    assert clip_xyxy((-math.inf, 0.0, math.inf, 10.0), 64, 64).valid is False


@pytest.mark.parametrize("value", ["inf", "nan", "1e400"])
def test_a_non_finite_image_size_is_malformed(value):
    with pytest.raises(AnnotationError) as caught:
        parse_voc_bytes(_voc(width=value))
    assert caught.value.kind == "malformed-xml"


def test_text_that_is_no_number_stays_malformed():
    with pytest.raises(AnnotationError) as caught:
        parse_voc_bytes(_voc(xmin="ten"))
    assert caught.value.kind == "malformed-xml"
