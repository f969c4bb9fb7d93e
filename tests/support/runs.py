"""Checks of a finished run's model.json that every family's training test shares."""

from __future__ import annotations

from typing import Any


def check_operating_point(data: dict[str, Any], iou: float) -> None:
    """model.json's threshold is the operating point chosen on the val split (the family's
    IoU kept), and the post-processing predict applies is recorded."""
    point = data["operating_point"]
    assert (point["target"], point["split"]) == ("sensitivity@2fp", "val")
    assert data["thresholds"] == {"conf": point["conf"], "iou": iou}
    assert 0.0 <= point["conf"] <= 1.0
    assert set(data["postprocess"]) == {"lung_field", "lesions"}
