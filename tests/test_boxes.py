import pytest

from detect import boxes


@pytest.mark.parametrize("xyxy", [(0, 0, 1, 1), (10.5, 20.25, 100, 200), (146, 285, 207, 335)])
def test_coco_round_trip(xyxy):
    coco = boxes.xyxy_to_coco(xyxy)
    assert coco[2] == pytest.approx(xyxy[2] - xyxy[0])
    assert boxes.coco_to_xyxy(coco) == pytest.approx(xyxy)


@pytest.mark.parametrize("size", [(512, 512), (640, 480), (64, 128)])
def test_yolo_round_trip(size):
    xyxy = (12.0, 30.0, 50.0, 61.0)
    yolo = boxes.xyxy_to_yolo(xyxy, *size)
    assert all(0 <= v <= 1 for v in yolo)
    assert boxes.yolo_to_xyxy(yolo, *size) == pytest.approx(xyxy)


def test_voc_is_read_as_is_and_written_outward():
    assert boxes.voc_to_xyxy(146, 285, 207, 335) == (146.0, 285.0, 207.0, 335.0)
    assert boxes.xyxy_to_voc((146.0, 285.0, 207.0, 335.0)) == (146, 285, 207, 335)
    assert boxes.xyxy_to_voc((10.2, 5.7, 20.1, 30.9)) == (10, 5, 21, 31)


def test_clip_and_validity():
    inside = boxes.clip_xyxy((10, 10, 20, 20), 64, 64)
    assert inside == boxes.ClipResult((10.0, 10.0, 20.0, 20.0), clipped=False, valid=True)
    over = boxes.clip_xyxy((-5, 10, 70, 20), 64, 64)
    assert over.clipped and over.valid and over.xyxy == (0.0, 10.0, 64.0, 20.0)
    assert not boxes.clip_xyxy((10, 10, 10, 20), 64, 64).valid  # zero width
    assert not boxes.clip_xyxy((70, 10, 80, 20), 64, 64).valid  # wholly outside
    assert not boxes.clip_xyxy((20, 10, 10, 20), 64, 64).valid  # inverted


def test_iou_of_half_width_shift_is_one_third():
    w, h = 40.0, 10.0
    a = (0.0, 0.0, w, h)
    b = (w / 2, 0.0, w / 2 + w, h)
    assert boxes.iou(a, b) == pytest.approx((w / 2 * h) / (2 * w * h - w / 2 * h))
    assert boxes.iou(a, b) == pytest.approx(1 / 3)
    assert boxes.iou(a, a) == 1.0
    assert boxes.iou(a, (100, 100, 110, 110)) == 0.0


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="positive"):
        boxes.xyxy_to_yolo((0, 0, 1, 1), 0, 10)
    with pytest.raises(ValueError, match="4 numbers"):
        boxes.coco_to_xyxy([1, 2, 3])
