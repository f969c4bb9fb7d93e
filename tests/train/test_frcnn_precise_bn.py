"""BatchNorm statistics re-estimated before validation (engine.precise_bn): what they
become, what stays untouched, the images each process uses (loop._bn_indices), and a
training that is the same with or without the re-estimate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from detect.models.faster_rcnn import loop
from detect.models.faster_rcnn.engine import Precision, precise_bn

CPU = Precision("cpu", None)


class Toy(nn.Module):
    """Takes a list of images like torchvision's detectors; one conv and one BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.norm = nn.BatchNorm2d(4)
        self.inputs: list[torch.Tensor] = []

    def forward(self, images: list[torch.Tensor]) -> torch.Tensor:
        features = self.conv(torch.stack(images))
        self.inputs.append(features.detach())
        return self.norm(features)


def _batches(*sizes: int) -> list[tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]]:
    generator = torch.Generator().manual_seed(0)
    return [([torch.rand(3, 8, 8, generator=generator) * (k + 1) for _ in range(n)],
             [{} for _ in range(n)]) for k, n in enumerate(sizes)]


def test_running_statistics_become_the_mean_of_the_batch_statistics():
    model = Toy()
    model.norm.running_mean.fill_(5.0)  # stale averages, as after a fast-moving training
    model.norm.running_var.fill_(40.0)
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k}
    model.train()
    assert precise_bn(model, _batches(4, 4, 2), torch.device("cpu"), CPU) == 3
    means = torch.stack([x.mean(dim=(0, 2, 3)) for x in model.inputs])
    variances = torch.stack([x.transpose(0, 1).flatten(1).var(dim=1) for x in model.inputs])
    torch.testing.assert_close(model.norm.running_mean, means.mean(0))
    torch.testing.assert_close(model.norm.running_var, variances.mean(0))
    assert model.norm.momentum == 0.1 and model.training and model.norm.training
    for key, value in weights.items():
        if key != "norm.num_batches_tracked":
            assert torch.equal(model.state_dict()[key], value), key


def test_no_batch_changes_nothing():
    model = Toy().eval()
    model.norm.running_mean.fill_(5.0)
    assert precise_bn(model, [], torch.device("cpu"), CPU) == 0
    assert torch.equal(model.norm.running_mean, torch.full((4,), 5.0))
    assert not model.training and not model.norm.training


def test_mobilenet_statistics_come_from_the_backbone_alone():
    from detect.models.faster_rcnn.network import build_model

    model = build_model("mobilenet_v3_large_fpn", 2, 64).eval()
    batches = _batches(2, 2)
    assert precise_bn(model, batches, torch.device("cpu"), CPU) == 2
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(int(m.num_batches_tracked) == 2 for m in norms)
    assert not model.training and all(not m.training for m in norms)


@pytest.mark.parametrize(("count", "size", "per", "expected"), [
    (49, 1, 8, 48),  # six full batches, spread over the split
    (5, 1, 8, 5),  # fewer images than a batch: all of them
    (5, 2, 1, 4),  # two processes: the same number each
    (1, 2, 4, 0),  # not one image per process: none (statistics stay as trained)
    (10_000, 1, 8, loop.PRECISE_BN_IMAGES),
])
def test_bn_images_are_shared_equally(count: int, size: int, per: int, expected: int):
    shares = [loop._bn_indices(count, rank, size, per) for rank in range(size)]
    assert sum(len(share) for share in shares) == expected
    assert len({len(share) for share in shares}) == 1
    picked = sorted(i for share in shares for i in share)
    assert len(set(picked)) == len(picked) and all(0 <= i < count for i in picked)
    if expected > 1:
        assert picked[0] == 0 and picked[-1] >= count - 1 - count // expected


def test_training_draws_the_same_random_numbers(dataset: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch):
    """The re-estimate reads its slices through its own generator: the global random stream
    (the RPN and ROI samplers draw from it) is the same as without it, so epoch 2 trains
    the same weights; only BatchNorm's running statistics differ."""
    from detect.models.faster_rcnn.config import FasterRCNNConfig
    from detect.train import train_config

    def weights(name: str) -> dict[str, torch.Tensor]:
        config = FasterRCNNConfig(data=dataset, backbone="mobilenet_v3_large_fpn", epochs=2,
                                  imgsz=64, batch=2, device="cpu", project=tmp_path,
                                  workers=0, max_steps=1, name=name)
        result = train_config(config)
        saved: dict[str, Any] = torch.load(result.run_dir / "weights/last.pt",
                                           map_location="cpu", weights_only=True)
        return dict(saved["model"])

    seen: list[int] = []
    real = loop.precise_bn

    def counted(*args: Any) -> int:
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(loop, "precise_bn", counted)
    with_bn = weights("with")
    assert len(seen) == 2 and all(batches > 0 for batches in seen)
    monkeypatch.setattr(loop, "precise_bn", lambda *args: 0)
    without = weights("without")
    statistics = {k for k in with_bn if k.endswith(("running_mean", "running_var"))}
    assert statistics and any(not torch.equal(with_bn[k], without[k]) for k in statistics)
    for key in set(with_bn) - statistics - {k for k in with_bn if "num_batches" in k}:
        assert torch.equal(with_bn[key], without[key]), key
