"""Leakage guard: no patient a model was trained on may be in the split it is scored on.

The training patients come from the run folder's model.json (contract 3:
``dataset.splits.train``), or, for a model.json made from this very dataset (same
fingerprint), from the dataset's own train split.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from detect.dataset import DatasetInfo
from detect.errors import RunFolderError
from detect.histology import short_patient_id

logger = logging.getLogger(__name__)


def leak_overlap(
    train_patients: Collection[str], eval_patients: Collection[str], split: str,
    allow_leak: bool,
) -> list[str]:
    """Patients in both the model's training split and the evaluated split, sorted.

    Raises:
        RunFolderError: there are any and ``allow_leak`` is False.
    """
    seen = {short_patient_id(p) for p in train_patients}
    evaluated = {short_patient_id(p) for p in eval_patients}
    overlap = sorted(seen & evaluated)
    if overlap and not allow_leak:
        shown = ", ".join(overlap[:10]) + (" ..." if len(overlap) > 10 else "")
        raise RunFolderError(
            f"leakage: {len(overlap)} of {len(evaluated)} {split} patients were in the "
            f"model's training split ({shown}); evaluate on patients the model never saw, "
            f"or pass --allow-leak to evaluate anyway (the report is marked)"
        )
    if overlap:
        logger.warning("leakage allowed: %d %s patients were trained on", len(overlap), split)
    return overlap


def model_train_patients(model_json: Mapping[str, Any], dataset: DatasetInfo) -> list[str]:
    """The patients a model was trained on, from its model.json (contract 3).

    Raises:
        RunFolderError: model.json does not say, and was not made from this dataset.
    """
    info = model_json.get("dataset") or {}
    splits = info.get("splits") if isinstance(info, Mapping) else None
    if isinstance(splits, Mapping) and "train" in splits:
        return [str(p) for p in splits["train"]]
    if isinstance(info, Mapping) and info.get("fingerprint") == dataset.fingerprint:
        return dataset.splits.get("train", [])
    raise RunFolderError(
        "model.json does not list its training patients (dataset.splits.train) and its "
        f"dataset fingerprint is not {dataset.fingerprint[:12]}... (this dataset's), so "
        "leakage cannot be checked; pass --allow-leak to evaluate anyway"
    )


def check_leakage(
    model_json: Mapping[str, Any], dataset: DatasetInfo, split: str, allow_leak: bool
) -> list[str]:
    """Check that no patient the model was trained on is in ``split`` of ``dataset``.

    Returns the overlapping patient IDs (only non-empty when ``allow_leak``), so the report
    can be marked. With ``allow_leak``, an unverifiable model.json gives [] and a warning.

    Raises:
        RunFolderError: overlap (one line: how many, which, and --allow-leak), or
            training patients that cannot be known, unless ``allow_leak``.
    """
    try:
        train = model_train_patients(model_json, dataset)
    except RunFolderError:
        if not allow_leak:
            raise
        logger.warning("leakage not checked: model.json does not list its training patients")
        return []
    return leak_overlap(train, dataset.splits.get(split, []), split, allow_leak)
