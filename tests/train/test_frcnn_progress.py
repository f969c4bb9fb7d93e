"""Faster R-CNN reports each training step (``on_batch``: epoch, epochs, step, steps,
images/s), which the command line shows as one progress bar per epoch."""

from __future__ import annotations

import csv
import importlib
import io
import json
from pathlib import Path

from detect.models.faster_rcnn.config import FasterRCNNConfig
from detect.runs.board import TB_DIR, tensorboard_available
from detect.train import train_config


def test_every_step_of_every_epoch_is_reported(dataset: Path, tmp_path: Path):
    events: list[tuple[object, ...]] = []
    rates: list[float] = []

    def on_batch(epoch: int, epochs: int, step: int, steps: int, rate: float) -> None:
        events.append((epoch, epochs, step, steps))
        rates.append(rate)

    config = FasterRCNNConfig(data=dataset, backbone="mobilenet_v3_large_fpn", epochs=2,
                              imgsz=64, batch=2, device="cpu", project=tmp_path, workers=0,
                              max_steps=3)
    result = train_config(config, on_epoch=lambda epoch, *_: events.append(("end", epoch)),
                          on_batch=on_batch)
    assert events == [(1, 2, 1, 3), (1, 2, 2, 3), (1, 2, 3, 3), ("end", 1),
                      (2, 2, 1, 3), (2, 2, 2, 3), (2, 2, 3, 3), ("end", 2)]
    assert all(rate > 0 for rate in rates)
    record = json.loads((result.run_dir / "model.json").read_text())["provenance"]
    assert record["initial_weights"] is None and record["hardware"]["cpu"]["count"] >= 1
    assert record["tensorboard"] == tensorboard_available()
    assert (result.run_dir / TB_DIR).is_dir() == tensorboard_available()
    with open(result.run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(0 < float(row["time_s"]) < 3600 for row in rows)  # seconds of that epoch


def test_the_cli_draws_one_bar_per_epoch_with_images_per_second(monkeypatch):
    from rich.console import Console

    cli_app = importlib.import_module("detect.cli.app")  # the module (detect.cli.app is Typer's)

    screen = io.StringIO()
    monkeypatch.setattr(cli_app, "console", Console(file=screen, force_terminal=True,
                                                    width=100))
    with cli_app.epoch_bars() as update:
        update(1, 2, 1, 4, 3.25)
        update(1, 2, 4, 4, 3.5)
        update(2, 2, 2, 4, 4.0)
    text = screen.getvalue()
    assert "epoch 1/2" in text and "4/4" in text and "3.5 img/s" in text
    assert "epoch 2/2" in text and "2/4" in text and "4.0 img/s" in text
