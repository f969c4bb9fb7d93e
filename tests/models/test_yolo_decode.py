"""detect's numpy YOLO pre- and post-processing against ultralytics' own (letterbox, NMS,
the NMS-free top-k, scale_boxes): what every runtime runs, checked against the reference it
replaces, so an exported model without torch gives ultralytics' boxes."""

from __future__ import annotations

import numpy as np
import pytest

from detect.models.yolo.decode import decode_output, letterbox, model_input


def _ultralytics():
    from detect.models.yolo.env import prepare_ultralytics

    prepare_ultralytics()
    import torch
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import scale_boxes

    return torch, LetterBox, non_max_suppression, scale_boxes


@pytest.mark.parametrize(("shape", "imgsz"), [((512, 512), 384), ((64, 64), 96), ((40, 30), 64),
                                               ((300, 512), 256), ((512, 512), 512)])
def test_letterbox_is_ultralytics_within_one_grey_level(shape, imgsz):
    _, LetterBox, _, _ = _ultralytics()
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    image[shape[0] // 3 :, : shape[1] // 2] = 30  # edges as well as noise
    theirs = LetterBox(new_shape=(imgsz, imgsz), auto=False, stride=32)(image=image)
    mine = letterbox(image, imgsz)
    assert mine.shape == theirs.shape == (imgsz, imgsz, 3)
    assert int(np.abs(mine.astype(int) - theirs.astype(int)).max()) <= 1
    black = np.zeros((*shape, 3), np.uint8)  # the same placement and padding, exactly
    assert np.array_equal(letterbox(black, imgsz),
                          LetterBox(new_shape=(imgsz, imgsz), auto=False, stride=32)(image=black))
    batch = model_input([image, image], imgsz)
    assert batch.shape == (2, 3, imgsz, imgsz) and batch.dtype == np.float32
    assert float(batch.max()) <= 1.0


def _pairs(mine, theirs_rows):
    """Every ultralytics row finds one of detect's boxes within 1e-3 px, with its score."""
    assert len(mine) == len(theirs_rows)
    for row in theirs_rows:
        distance = np.abs(mine.xyxy - row[:4]).max(axis=1)
        k = int(distance.argmin())
        assert distance[k] <= 1e-3 and abs(mine.scores[k] - row[4]) <= 1e-6
        assert mine.classes[k] == int(row[5])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_decoding_keeps_what_ultralytics_keeps(seed):
    torch, _, non_max_suppression, scale_boxes = _ultralytics()
    rng = np.random.default_rng(seed)
    nc, anchors = 4, 1344
    raw = np.zeros((2, 4 + nc, anchors), np.float32)
    centres = rng.uniform(20, 236, (2, 2, anchors))
    raw[:, :2] = centres + rng.normal(0, 3, centres.shape)  # clusters of overlapping boxes
    raw[:, 2:4] = rng.uniform(8, 60, (2, 2, anchors))
    raw[:, 4:] = rng.beta(0.3, 3.0, (2, nc, anchors))
    images = [np.zeros((512, 400, 3), np.uint8)] * 2
    mine = decode_output(raw, images, (256, 256), nc=nc, conf=0.05, iou=0.6)
    kept = non_max_suppression(torch.from_numpy(raw), 0.05, 0.6, nc=nc, max_det=300)
    for image_mine, rows in zip(mine, kept):
        rows = rows.numpy().copy()
        rows[:, :4] = scale_boxes((256, 256), rows[:, :4], (512, 400))
        _pairs(image_mine, rows)
        assert image_mine.class_scores is not None and image_mine.class_scores.shape[1] == nc


def test_nms_free_decoding_is_a_score_threshold():
    _, _, non_max_suppression, scale_boxes = _ultralytics()
    import torch

    rng = np.random.default_rng(5)
    raw = np.zeros((1, 300, 6), np.float32)
    raw[0, :, :2] = rng.uniform(0, 200, (300, 2))
    raw[0, :, 2:4] = raw[0, :, :2] + rng.uniform(5, 50, (300, 2))
    raw[0, :, 4] = np.sort(rng.uniform(0, 1, 300))[::-1]
    raw[0, :, 5] = rng.integers(0, 4, 300)
    mine = decode_output(raw, [np.zeros((256, 256, 3), np.uint8)], (256, 256), nc=4, conf=0.3,
                         iou=0.7, end2end=True)[0]
    rows = non_max_suppression(torch.from_numpy(raw), 0.3, 0.7, nc=4, end2end=True)[0].numpy()
    rows[:, :4] = scale_boxes((256, 256), rows[:, :4].copy(), (256, 256))
    _pairs(mine, rows)
    assert mine.class_scores is None and (mine.scores > 0.3).all()
