"""Why a Faster R-CNN trained on real CT failed ONNX parity, and the fix.

torchvision pads every image of a batch to the batch's largest size, so PyTorch saw the
parity check's 3:4 crop with 128 rows of padding (batched with square slices) while the
ONNX graph, one image per run, saw it alone: the detections near that edge differed.
The Faster R-CNN adapters now run each image size as its own batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from detect.errors import ExportError
from detect.export.parity import compare_detections, parity_images
from detect.export.run import ExportConfig, export_model
from detect.models.base import Detections
from detect.models.faster_rcnn.network import FasterRCNNDetector, build_model
from detect.models.faster_rcnn.runtime import detections_of, image_input, same_size_batches
from detect.recipe import DEFAULT_RECIPE


def _tensors(images: list[np.ndarray]) -> list[torch.Tensor]:
    return [torch.from_numpy(image_input(image)) for image in images]


def test_same_size_batches_groups_by_size_in_order():
    a, b = np.zeros((64, 64, 3), np.uint8), np.zeros((48, 64, 3), np.uint8)
    assert same_size_batches([a, b, a, b, a]) == [[0, 2, 4], [1, 3]]
    assert same_size_batches([]) == []


@pytest.fixture(scope="module")
def frcnn_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mobilenet Faster R-CNN, one training step at 64 px, its logits scaled up as in
    :func:`detector` (one step leaves every score near 0.2, where the parity check's
    borderline rule excuses any difference)."""
    from detect.models.faster_rcnn.config import FasterRCNNConfig
    from detect.train import train_config

    config = FasterRCNNConfig(data=tiny_dataset, backbone="mobilenet_v3_large_fpn", epochs=1,
                              imgsz=64, batch=2, device="cpu", workers=0, max_steps=1,
                              project=tmp_path_factory.mktemp("frcnn"))
    run = train_config(config).run_dir
    best = run / "weights" / "best.pt"
    checkpoint = torch.load(best, map_location="cpu", weights_only=True)
    for name in ("roi_heads.box_predictor.cls_score.weight", "rpn.head.cls_logits.weight"):
        checkpoint["model"][name] = checkpoint["model"][name] * 30.0
    torch.save(checkpoint, best)
    return run


@pytest.fixture(scope="module")
def detector() -> FasterRCNNDetector:
    """A random 128 px model (the 96-row crop needs no padding of its own: 32 divides it)
    with its class and objectness logits scaled up, so that scores spread as a trained
    model's do and feature changes show in them (a plain random model scores every box
    about 0.5, within the tolerances whatever its input)."""
    torch.manual_seed(0)
    net = build_model("mobilenet_v3_large_fpn", 2, 128).eval()
    with torch.no_grad():
        net.roi_heads.box_predictor.cls_score.weight.mul_(30.0)
        net.rpn.head.cls_logits.weight.mul_(30.0)
    return FasterRCNNDetector(net, ("tumor",), "cpu")


def test_torchvision_pads_a_mixed_batch(detector):
    """The cause, shown on torchvision itself: a crop batched with a larger image gets
    other detections than the crop alone (on the real model: 44 of 63 matched)."""
    images = parity_images(DEFAULT_RECIPE, 128)
    square, crop = images[0], images[3]
    assert crop.shape[:2] == (96, 128)
    with torch.inference_mode():
        alone = detections_of(detector.net(_tensors([crop]))[0], 0.001)
        batched = detections_of(detector.net(_tensors([square, crop]))[1], 0.001)
    assert not compare_detections([alone], [batched], cap=100, nms_iou=0.5).passed


def test_an_image_gets_the_same_detections_whatever_it_is_batched_with(detector):
    images = parity_images(DEFAULT_RECIPE, 128)
    together = detector.predict(images, 0.001)  # three squares and the crop
    alone = [detector.predict([image], 0.001)[0] for image in images]
    result = compare_detections(alone, together, cap=100, nms_iou=0.5)
    assert result.passed, result.failures[:2]
    assert result.matched == result.reference > 0


def test_a_failed_parity_check_says_what_differs_and_leaves_nothing(monkeypatch, tmp_path,
                                                                   frcnn_run: Path):
    from detect.models.faster_rcnn import runtime

    real = runtime.OnnxFasterRCNNDetector.predict

    def shifted(self, images, conf):  # a graph that misplaces every box by 3 px
        return [Detections(d.xyxy + 3.0, d.scores, d.classes) for d in real(self, images, conf)]

    monkeypatch.setattr(runtime.OnnxFasterRCNNDetector, "predict", shifted)
    out = tmp_path / "new" / "export"
    with pytest.raises(ExportError) as caught:
        export_model(ExportConfig(frcnn_run, "onnx", out))
    message = str(caught.value)
    assert "\n" not in message
    assert "parity check failed, model.onnx removed" in message
    assert "the first: image 0 (64 x 64 px): PyTorch box" in message
    assert "has no exported match (nearest 3.000 px" in message
    assert "the export is not usable" in message and "onnxruntime" in message
    assert not out.exists()  # the folder this export created is gone
    mine = tmp_path / "mine"  # a folder the user made: kept, and left empty
    mine.mkdir()
    with pytest.raises(ExportError):
        export_model(ExportConfig(frcnn_run, "onnx", mine))
    assert mine.is_dir() and not list(mine.iterdir())
