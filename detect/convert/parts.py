"""The per-patient part files of a conversion (``OUT/.parts/<patient>.json``): what one
patient's images and issues were, keyed by a hash of the options and the patient's
inputs, so a re-run skips finished patients and the merge reads them back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from detect.convert.images import TaskResult
from detect.convert.plan import PatientPlan
from detect.io.atomic import write_bytes
from detect.io.paths import inside, safe_component


def part_path(parts: Path, patient_id: str) -> Path:
    return inside(parts, f"{safe_component(patient_id)}.json")


def part_key(plan: PatientPlan, split: str, settings_hash: str) -> str:
    """What a part must have been made with to be reused: options, split and inputs."""
    tasks = sorted((t.name, t.annotation_key, t.dicom_rel) for t in plan.tasks)
    text = json.dumps([settings_hash, split, tasks])
    return hashlib.sha256(text.encode()).hexdigest()


def read_part(path: Path, key: str) -> dict[str, Any] | None:
    """The part at ``path`` if it was made with ``key``, else None."""
    try:
        part = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return part if isinstance(part, dict) and part.get("key") == key else None


def write_part(parts: Path, plan: PatientPlan, key: str, results: list[TaskResult]) -> None:
    part = {
        "key": key,
        "patient_id": plan.patient_id,
        "records": [r.record for r in results if r.record is not None],
        "issues": [i.to_json() for i in plan.issues]
        + [i.to_json() for r in results for i in r.issues],
    }
    write_bytes(part_path(parts, plan.patient_id), json.dumps(part).encode())
