"""Faster R-CNN pieces without training: samples, augmentation, samplers, model, weights."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from detect.boxes import coco_to_xyxy
from detect.dataset import load_dataset
from detect.errors import ConfigError, RunFolderError
from detect.models.faster_rcnn.config import FasterRCNNConfig
from detect.models.faster_rcnn.data import (
    BalancedSampler,
    BoxSafeAugment,
    CocoSplit,
    balanced_weights,
    read_rgb,
)
from detect.models.faster_rcnn.engine import FINAL_LR_FACTOR, WARMUP_FACTOR, warmup_cosine
from detect.models.faster_rcnn.network import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    FasterRCNNDetector,
    build_model,
    load_pretrained,
)


def test_sample_is_torchvision_detection_contract(dataset: Path):
    info = load_dataset(dataset)
    split = CocoSplit(info, "train")
    coco = info.load_coco("train")
    first = min(coco["images"], key=lambda i: i["id"])
    image, target = split[0]
    assert image.dtype == torch.float32 and tuple(image.shape) == (3, 96, 96)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    png = read_rgb(dataset / first["file_name"])  # channel order: recipe (RGB) order
    as_uint8 = (image * 255).round().to(torch.uint8)
    assert torch.equal(as_uint8, torch.from_numpy(png.copy()).permute(2, 0, 1))
    anns = [a for a in coco["annotations"] if a["image_id"] == first["id"]]
    expected = torch.tensor([coco_to_xyxy(a["bbox"]) for a in anns], dtype=torch.float32)
    assert target["boxes"].dtype == torch.float32 and torch.equal(target["boxes"], expected)
    assert target["labels"].dtype == torch.int64
    assert target["labels"].tolist() == [a["category_id"] for a in anns]
    assert int(target["image_id"]) == first["id"]
    assert target["area"].tolist() == pytest.approx([a["bbox"][2] * a["bbox"][3] for a in anns])
    assert target["iscrowd"].tolist() == [0] * len(anns)


def _with_negative(dataset: Path, tmp_path: Path) -> Path:
    """A writable copy whose first train image has lost its boxes (a negative slice)."""
    copy = tmp_path / "ds"
    shutil.copytree(dataset, copy)
    coco_path = copy / "coco" / "train.json"
    coco = json.loads(coco_path.read_text())
    first = min(i["id"] for i in coco["images"])
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != first]
    coco_path.write_text(json.dumps(coco))
    return copy


def test_negative_image_has_empty_boxes(dataset: Path, tmp_path: Path):
    split = CocoSplit(load_dataset(_with_negative(dataset, tmp_path)), "train", BoxSafeAugment())
    _, target = split[0]
    assert tuple(target["boxes"].shape) == (0, 4) and target["boxes"].dtype == torch.float32
    assert tuple(target["labels"].shape) == (0,) and target["labels"].dtype == torch.int64
    weights = balanced_weights(split)
    negatives = sum(1 for i in range(len(split)) if not split.categories_of(i))
    assert weights[0] == pytest.approx(1.0 / negatives)


def _edge_sample() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
    boxes = np.array([[0, 40, 6, 50], [88, 2, 96, 9], [40, 40, 60, 58]], dtype=np.float32)
    return image, {"boxes": boxes, "labels": np.array([1, 2, 4], dtype=np.int64)}


def test_augmentation_never_loses_a_box_and_is_seeded():
    image, target = _edge_sample()
    augment = BoxSafeAugment(seed=3)
    changed = 0
    for index in range(60):
        augment.reseed(1, index)
        out_image, out = augment(image, target)
        assert out["boxes"].shape == (3, 4) and out["labels"].tolist() == [1, 2, 4]
        boxes = out["boxes"]
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
        assert boxes.min() >= 0 and boxes[:, [0, 2]].max() <= 96 and boxes[:, [1, 3]].max() <= 96
        changed += int(not np.array_equal(out_image, image))
    assert changed > 30  # augmentation really happens
    augment.reseed(1, 7)
    a = augment(image, target)
    augment.reseed(1, 7)
    b = augment(image, target)
    augment.reseed(2, 7)
    c = augment(image, target)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1]["boxes"], b[1]["boxes"])
    assert not np.array_equal(a[0], c[0])


def test_horizontal_flip_mirrors_the_box():
    image, target = _edge_sample()
    augment = BoxSafeAugment(seed=0)
    flips = 0
    for index in range(40):
        augment.reseed(0, index)
        out_image, out = augment(image, target)
        if np.array_equal(out_image, image[:, ::-1]):  # flip alone was drawn
            flips += 1
            assert out["boxes"][2].tolist() == pytest.approx([36, 40, 56, 58])
    assert flips > 0


class _Split:
    def __init__(self, classes: list[set[int]]) -> None:
        self.classes = classes

    def __len__(self) -> int:
        return len(self.classes)

    def categories_of(self, index: int) -> set[int]:
        return self.classes[index]


def test_balanced_weights_favour_the_rarest_class():
    split = _Split([{1}] * 8 + [{2}] * 2 + [{1, 3}] + [set()] * 4)
    weights = balanced_weights(split)  # type: ignore[arg-type]
    assert weights[0] == pytest.approx(1 / 9)  # class 1 is on 9 images
    assert weights[8] == pytest.approx(1 / 2)
    assert weights[10] == pytest.approx(1.0)  # its rarest class, 3, is on this image only
    assert weights[11] == pytest.approx(1 / 4)  # negatives count as a class


def test_balanced_sampler_is_seeded_weighted_and_sharded():
    weights = [1.0] * 10 + [10.0]
    sampler = BalancedSampler(weights, seed=5)
    draws = []
    for epoch in range(200):
        sampler.set_epoch(epoch)
        draws.append(list(sampler))
    assert all(len(d) == 11 for d in draws) and draws[0] != draws[1]
    sampler.set_epoch(0)
    assert list(sampler) == draws[0]
    share = sum(d.count(10) for d in draws) / (200 * 11)
    assert 0.4 < share < 0.6  # weight 10 of 20
    shards = [BalancedSampler(weights, num_replicas=2, rank=r, seed=5) for r in (0, 1)]
    parts = [list(s) for s in shards]
    assert len(parts[0]) == len(parts[1]) == len(shards[0]) == 6 and parts[0] != parts[1]


def test_warmup_then_cosine():
    factor = warmup_cosine(total_iters=100, warmup_iters=10)
    assert factor(0) == pytest.approx(WARMUP_FACTOR)
    assert factor(5) == pytest.approx(WARMUP_FACTOR + (1 - WARMUP_FACTOR) * 0.5)
    assert factor(10) == pytest.approx(1.0)
    assert factor(100) == pytest.approx(FINAL_LR_FACTOR)
    after = [factor(i) for i in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(after))


def test_options_fail_with_one_clear_line(tmp_path: Path):
    with pytest.raises(ConfigError, match="--backbone must be one of"):
        FasterRCNNConfig(data=tmp_path, backbone="vgg16")
    with pytest.raises(ConfigError, match="loss weighting is YOLO only"):
        FasterRCNNConfig(data=tmp_path, class_weighting="loss")
    with pytest.raises(ConfigError, match="multiple of the 2 processes"):
        FasterRCNNConfig(data=tmp_path, device="cpu", world_size=2, batch=3)
    with pytest.raises(ConfigError, match="nothing is downloaded"):
        FasterRCNNConfig(data=tmp_path, weights=tmp_path / "missing.pt")


def test_default_backbone_has_small_anchors_that_fit_its_head():
    model = build_model("resnet50_fpn_v2", num_classes=5, imgsz=512)
    generator = model.rpn.anchor_generator
    assert [s[0] for s in generator.sizes] == [16, 32, 64, 128, 256]
    assert generator.num_anchors_per_location() == [3] * 5
    assert model.rpn.head.cls_logits.out_channels == 3
    assert model.transform.min_size == (512,) and model.transform.max_size == 512
    assert model.roi_heads.box_predictor.cls_score.out_features == 5


def test_torchvision_coco_checkpoint_loads_except_the_class_head(tmp_path: Path):
    from torchvision.models.detection import fasterrcnn_resnet50_fpn_v2

    coco = fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path / "coco.pth"
    torch.save(coco.state_dict(), path)
    model = build_model("resnet50_fpn_v2", num_classes=5, imgsz=64)
    counts = load_pretrained(model, path)
    assert counts["skipped_shape"] == 4  # cls_score and bbox_pred, weight and bias
    assert counts["loaded"] == len(coco.state_dict()) - 4
    name = "backbone.body.layer1.0.conv1.weight"
    assert torch.equal(model.state_dict()[name], coco.state_dict()[name])


def test_torchvision_mobilenet_checkpoint_loads_its_body(tmp_path: Path):
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    coco = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path / "coco.pth"
    torch.save(coco.state_dict(), path)
    model = build_model("mobilenet_v3_large_fpn", num_classes=5, imgsz=64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    load_pretrained(model, path)
    after, source = model.state_dict(), coco.state_dict()
    body = [k for k in source if k.startswith("backbone.body.")]
    assert body and all(torch.equal(after[k], source[k]) for k in body)
    # Our FPN reads stride-8 and -16 stages too: its first inner layer has another width.
    inner = "backbone.fpn.inner_blocks.0.0.weight"
    assert after[inner].shape != source[inner].shape and torch.equal(after[inner], before[inner])


class _NotATensor:
    pass


def test_bad_weights_files_are_refused(tmp_path: Path):
    model = build_model("mobilenet_v3_large_fpn", num_classes=5, imgsz=64)
    with pytest.raises(ConfigError, match="is not a file"):
        load_pretrained(model, tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="weights-only"):
        load_pretrained(model, garbage)
    pickled = tmp_path / "pickled.pt"
    torch.save({"x": _NotATensor()}, pickled)  # arbitrary objects are never unpickled
    with pytest.raises(ConfigError, match=r"^refused: .* holds .*_NotATensor, which"):
        load_pretrained(model, pickled)
    other = tmp_path / "other.pt"
    torch.save({"model": {"foo.weight": torch.zeros(2)}}, other)
    with pytest.raises(ConfigError, match="none of its 1 tensors fit"):
        load_pretrained(model, other)


def test_detector_adapter_predicts_on_arrays(tmp_path: Path):
    torch.manual_seed(0)
    model = build_model("mobilenet_v3_large_fpn", num_classes=5, imgsz=64)
    path = tmp_path / "best.pt"
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": "best",
               "classes": ["A", "B", "E", "G"], "model": model.state_dict()}
    torch.save(payload, path)
    detector = FasterRCNNDetector.load(path, classes=("A", "B", "E", "G"), imgsz=64, iou=0.5,
                                       backbone="mobilenet_v3_large_fpn", device="cpu")
    assert detector.classes == ("A", "B", "E", "G") and detector.device == "cpu"
    images = [np.full((80, 96, 3), 40, np.uint8), np.zeros((64, 64, 3), np.uint8)]
    detections = detector.predict(images, conf=0.0)
    assert len(detections) == 2
    for det, image in zip(detections, images):
        assert det.xyxy.dtype == np.float32 and det.xyxy.shape == (len(det), 4)
        assert len(det) == 0 or (det.classes.min() >= 0 and det.classes.max() <= 3)
        assert len(det) == 0 or det.xyxy[:, 2].max() <= image.shape[1] + 1e-3
    assert sum(len(d) for d in detections) > 0  # an untrained net still scores boxes
    assert all(len(d) == 0 for d in detector.predict(images, conf=1.01))
    with pytest.raises(RunFolderError, match="predicts classes"):
        FasterRCNNDetector.load(path, classes=("tumor",), imgsz=64, iou=0.5,
                                backbone="mobilenet_v3_large_fpn", device="cpu")
    with pytest.raises(RunFolderError, match="does not fit"):
        FasterRCNNDetector.load(path, classes=("A", "B", "E", "G"), imgsz=64, iou=0.5,
                                backbone="resnet50_fpn_v2", device="cpu")
    torch.save(payload | {"version": CHECKPOINT_VERSION - 1}, path)  # other anchors: refused
    with pytest.raises(RunFolderError, match=r"version 1 Faster R-CNN checkpoint.*retrain"):
        FasterRCNNDetector.load(path, classes=("A", "B", "E", "G"), imgsz=64, iou=0.5,
                                backbone="mobilenet_v3_large_fpn", device="cpu")


def test_anchors_scale_with_imgsz_and_both_backbones_see_stride_8():
    from detect.models.faster_rcnn.network import anchor_sizes

    assert anchor_sizes(512) == (16, 32, 64, 128, 256)
    assert anchor_sizes(256) == (8, 16, 32, 64, 128)
    assert anchor_sizes(64) == (4, 4, 8, 16, 32)
    for backbone, finest in (("resnet50_fpn_v2", 4), ("mobilenet_v3_large_fpn", 8)):
        model = build_model(backbone, num_classes=2, imgsz=128).eval()
        with torch.no_grad():
            features = model.backbone(torch.zeros(1, 3, 128, 128))
        assert 128 // max(f.shape[-1] for f in features.values()) == finest, backbone
        assert len(model.rpn.anchor_generator.sizes) == len(features)
        assert model.roi_heads.fg_bg_sampler.batch_size_per_image == 128


def test_a_read_only_image_becomes_its_own_tensor_without_a_warning():
    import warnings

    from detect.models.faster_rcnn.data import to_tensors

    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    image.setflags(write=False)
    target = {"boxes": np.array([[0, 0, 2, 2]], np.float32), "labels": np.array([1])}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensor, _ = to_tensors(image, target, 7)
    assert tensor.shape == (3, 4, 5)
    assert torch.allclose(tensor * 255, torch.from_numpy(image.copy()).permute(2, 0, 1).float())
