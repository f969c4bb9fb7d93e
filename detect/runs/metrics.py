"""metrics.csv of a run folder: one row per epoch, written atomically after every epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from detect.errors import RunFolderError
from detect.io.csvfile import write_csv

#: metrics.csv columns; losses are the family's own (YOLO: box, cls, dfl); ``time_s`` is the
#: wall seconds of that epoch (training and validation), in every family.
METRIC_COLUMNS = (
    "epoch",
    "train_box_loss",
    "train_cls_loss",
    "train_dfl_loss",
    "precision",
    "recall",
    "mAP50",
    "mAP50-95",
    "val_box_loss",
    "val_cls_loss",
    "val_dfl_loss",
    "time_s",
)


def write_metrics_csv(
    path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = METRIC_COLUMNS
) -> None:
    """One row per epoch with ``columns`` (default :data:`METRIC_COLUMNS`; a family with
    other metrics passes its own), missing values left empty."""
    write_csv(path, columns, ({key: _cell(row.get(key)) for key in columns} for row in rows))


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else value


def best_epoch(rows: Sequence[Mapping[str, Any]], key: str = "mAP50-95") -> Mapping[str, Any]:
    """The row with the highest ``key``; ties go to the later epoch (as best.pt is saved).

    Raises:
        RunFolderError: no rows.
    """
    if not rows:
        raise RunFolderError("training wrote no epoch metrics; nothing to report")
    return max(reversed(rows), key=lambda row: float(row.get(key) or 0.0))
