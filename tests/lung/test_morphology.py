"""detect's numpy morphology is exactly SciPy's and OpenCV's (what the lung field was built
and checked with), on random masks of several densities, in 2D and 3D."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from detect.lung.morphology import block_counts, close, dilate, ellipse, erode, fill_holes, label


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [(37, 41), (9, 23, 17), (41, 1), (1, 37), (6, 1, 9)])
def test_label_is_scipys(seed, shape):
    rng = np.random.default_rng(seed)
    # sparse to nearly full: single cells, short and long runs along the last axis
    for density in (0.05, 0.2, 0.45, 0.6, 0.9):
        mask = rng.random(shape) < density
        mine, count = label(mask)
        theirs, their_count = ndimage.label(mask)
        assert count == their_count and np.array_equal(mine, theirs)
    assert label(np.zeros(shape, bool))[1] == 0


def test_label_merges_a_long_winding_component_at_once():
    mask = np.zeros((64, 64), bool)
    mask[::2, :] = True
    mask[1::4, -1] = mask[3::4, 0] = True  # one snake through every row
    labels, count = label(mask)
    assert count == 1 and np.array_equal(labels > 0, mask)


@pytest.mark.parametrize("radius", range(6))
def test_ellipse_is_opencvs(radius):
    theirs = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    assert np.array_equal(ellipse(radius), theirs.astype(bool))


@pytest.mark.parametrize("seed", range(4))
def test_morphology_and_holes_are_opencvs(seed):
    rng = np.random.default_rng(seed)
    plane = rng.random((40, 50)) < 0.35
    plane[5:20, 5:20] = True
    plane[10:14, 10:14] = False  # a hole
    u8 = plane.astype(np.uint8)
    for radius in (1, 2, 3):
        kernel = ellipse(radius)
        k8 = kernel.astype(np.uint8)
        assert np.array_equal(dilate(plane, kernel), cv2.dilate(u8, k8).astype(bool))
        assert np.array_equal(erode(plane, kernel), cv2.erode(u8, k8).astype(bool))
        assert np.array_equal(close(plane, kernel),
                              cv2.morphologyEx(u8, cv2.MORPH_CLOSE, k8).astype(bool))
    padded = np.pad(u8, 1)
    cv2.floodFill(padded, None, (0, 0), 2)
    assert np.array_equal(fill_holes(plane), padded[1:-1, 1:-1] != 2)
    assert np.array_equal(fill_holes(plane), ndimage.binary_fill_holes(plane))


@pytest.mark.parametrize("block", [1, 3, 4, 7])
def test_block_counts_are_box_sums(block):
    rng = np.random.default_rng(block)
    mask = rng.random((6 * block, 9 * block)) < 0.5
    counts = block_counts(mask, block)
    theirs = cv2.boxFilter(mask.astype(np.uint8), cv2.CV_16U, (block, block), anchor=(0, 0),
                           normalize=False, borderType=cv2.BORDER_CONSTANT)[::block, ::block]
    assert counts.shape == (6, 9) and np.array_equal(counts, theirs)
