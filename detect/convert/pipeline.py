"""``detect convert``: index → plan → split → convert patients (resumable) → merge.

Work is saved per patient (``.parts/<patient>.json``, written atomically after all its
images), so Ctrl-C loses at most the patients in flight and a re-run skips the rest. With
``--shard I/N`` only a deterministic 1/N of the patients is converted; the merge runs when
every patient of the cohort has its part, so the last shard to finish (or a re-run
without ``--shard``) writes the dataset.

OUT is the user's: a folder detect did not write is refused (:mod:`.outdir`), one convert
writes it at a time (:mod:`detect.io.outlock`), a finished dataset is replaced only with
``--overwrite`` (:mod:`.replace`: other options, or inputs that changed), and a run that
re-renders images first removes dataset.json, so no dataset.json ever names a recipe
other than its PNGs' (an interrupted re-run leaves no dataset until it is finished, and
the same command continues it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from detect import __version__
from detect.convert.annotations import reconcile_index_issues
from detect.convert.augment import augmentation_section, draw
from detect.convert.config import ConvertConfig, Shard
from detect.convert.images import TaskResult, WorkerSettings, process_task
from detect.convert.index import CACHE_NAME, build_index
from detect.convert.issues import Issue
from detect.convert.manifest import build_manifest, manifest_bytes, write_dataset
from detect.convert.negatives import negatives_rule
from detect.convert.outdir import (
    Ledger,
    check_ownership,
    claim,
    foreign_images,
    seed_from_parts,
    written_path,
)
from detect.convert.plan import ConversionPlan, ImageTask, PatientPlan, plan_conversion
from detect.convert.replace import Replacement
from detect.convert.split import split_patients
from detect.convert.usable import require_annotations, require_boxes, require_slices
from detect.io.atomic import write_bytes
from detect.io.outlock import hold_out_lock
from detect.io.paths import inside, safe_component
from detect.io.write_errors import output_errors
from detect.workers import worker_pool

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


@dataclass
class ConvertSummary:
    """What a conversion did; ``merged`` is False for a shard that left work to others."""

    out: Path
    merged: bool
    patients_total: int
    patients_converted: int
    patients_reused: int
    images: int
    boxes: int
    issue_counts: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)


def _in_shard(patient: str, shard: Shard | None) -> bool:
    if shard is None:
        return True
    digest = hashlib.sha1(patient.encode()).digest()
    return int.from_bytes(digest[:4], "big") % shard.count == shard.index


def _settings_hash(config: ConvertConfig) -> str:
    settings = {
        "recipe": config.recipe.to_dict(),
        "classes": list(config.classes),
        "fused": config.fused,
        "negatives": config.negatives,
        "negatives_from": config.negatives_from,
        "version": __version__,
    }
    if config.hu_jitter.copies:  # absent when off: earlier datasets keep their parts
        settings["hu_jitter"] = {**config.hu_jitter.to_dict(), "seed": config.seed}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _lock_key(config: ConvertConfig, settings_hash: str) -> str:
    """What shards must agree on to share OUT: every option that shapes the dataset."""
    text = json.dumps([settings_hash, list(config.split), config.seed, config.max_pixels])
    return hashlib.sha256(text.encode()).hexdigest()


def _part_path(parts: Path, patient_id: str) -> Path:
    return inside(parts, f"{safe_component(patient_id)}.json")


def _part_key(plan: PatientPlan, split: str, settings_hash: str) -> str:
    tasks = sorted((t.name, t.annotation_key, t.dicom_rel) for t in plan.tasks)
    text = json.dumps([settings_hash, split, tasks])
    return hashlib.sha256(text.encode()).hexdigest()


def _read_part(path: Path, key: str) -> dict[str, Any] | None:
    try:
        part = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return part if part.get("key") == key else None


def _results(
    tasks: list[tuple[ImageTask, str]], settings: WorkerSettings, pool: Executor | None
) -> Iterator[TaskResult]:
    if pool is None:
        for task, split in tasks:
            yield process_task(task, split, settings)
        return
    yield from pool.map(
        process_task,
        [t for t, _ in tasks],
        [s for _, s in tasks],
        [settings] * len(tasks),
        chunksize=4,
    )


def _convert_patients(
    todo: list[tuple[PatientPlan, str, str]],
    settings: WorkerSettings,
    parts: Path,
    workers: int,
    progress: Progress | None,
) -> None:
    """Run every task of the given patients; write each patient's part when it is done."""
    tasks = [(task, split) for plan, split, _ in todo for task in plan.tasks]
    remaining = {plan.patient_id: len(plan.tasks) for plan, _, _ in todo}
    collected: dict[str, list[TaskResult]] = {plan.patient_id: [] for plan, _, _ in todo}
    by_patient = {plan.patient_id: (plan, key) for plan, _, key in todo}
    for plan, _, key in todo:
        if not plan.tasks:
            _write_part(parts, plan, key, [])
    pool = worker_pool(workers) if workers > 1 and len(tasks) > 1 else None
    try:
        for done, ((task, _), result) in enumerate(
            zip(tasks, _results(tasks, settings, pool)), start=1
        ):
            collected[task.patient_id].append(result)
            remaining[task.patient_id] -= 1
            if remaining[task.patient_id] == 0:
                plan, key = by_patient[task.patient_id]
                _write_part(parts, plan, key, collected.pop(task.patient_id))
            if progress:
                progress("images", done, len(tasks))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _write_part(parts: Path, plan: PatientPlan, key: str, results: list[TaskResult]) -> None:
    part = {
        "key": key,
        "patient_id": plan.patient_id,
        "records": [r.record for r in results if r.record is not None],
        "issues": [i.to_json() for i in plan.issues]
        + [i.to_json() for r in results for i in r.issues],
    }
    write_bytes(_part_path(parts, plan.patient_id), json.dumps(part).encode())


def convert(config: ConvertConfig, progress: Progress | None = None) -> ConvertSummary:
    """Convert a Lung-PET-CT-Dx style tree into a dataset folder (docs/contracts.md, contract 2).

    Raises:
        OutputFolderError: OUT holds files detect did not write, a dataset this run would
            change (without ``overwrite``, :mod:`.replace`), another convert is writing
            it, or it cannot be written (disk full, read-only).
        NothingToConvert: no DICOM slice, or no usable annotation, under the roots.
    """
    check_ownership(config.out)
    settings_hash = _settings_hash(config)
    with output_errors(config.out), hold_out_lock(
        config.out, shard=config.shard is not None, settings=_lock_key(config, settings_hash)
    ):
        claim(config.out)
        return _convert_locked(config, progress, settings_hash)


def _convert_locked(
    config: ConvertConfig, progress: Progress | None, settings_hash: str
) -> ConvertSummary:
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    out = config.out
    replacing = Replacement.of(out, config.overwrite)
    replacing.check_options(_base(config, {}, {}))
    index = build_index(
        config.dicom_root,
        workers=config.workers,
        cache_path=out / ".cache" / CACHE_NAME,
        progress=(lambda d, t: progress("index", d, t)) if progress else None,
        exclude=[out],
        max_pixels=config.max_pixels,
    )
    require_slices(index, config.dicom_root)
    seconds["index"] = time.perf_counter() - start
    plan = plan_conversion(
        index,
        config.annotation_root,
        offsets=config.recipe.neighbours,
        fused_mode=config.fused,
        negatives=config.negatives,
        seed=config.seed,
        workers=config.workers,
        max_pixels=config.max_pixels,
        exclude=[out],
        negatives_from=config.negatives_from,
    )
    require_annotations(plan, config.annotation_root)
    letters = {p: plan.patients[p].letter for p in plan.patients}
    split = split_patients(letters, config.split, config.seed)
    _add_hu_copies(plan, split.assignment, config)
    parts = out / ".parts"
    todo, reused = [], 0
    for patient_id, patient_plan in sorted(plan.patients.items()):
        key = _part_key(patient_plan, split.assignment[patient_id], settings_hash)
        if not _in_shard(patient_id, config.shard):
            continue
        if _read_part(_part_path(parts, patient_id), key) is not None:
            reused += 1
            continue
        todo.append((patient_plan, split.assignment[patient_id], key))
    seconds["plan"] = time.perf_counter() - start - seconds["index"]
    ledger = Ledger(out)
    seed_from_parts(ledger, parts)
    replacing.check_inputs(sum(replacing.changed(p.patient_id, _part_path(parts, p.patient_id))
                               for p, _, _ in todo))
    if todo:
        (out / "dataset.json").unlink(missing_ok=True)  # stale until this run merges
        ledger.record(
            written_path(kind, split_name, task.name)
            for plan_, split_name, _ in todo
            for task in plan_.tasks
            for kind in ("images", "labels")
        )
    settings = WorkerSettings(
        str(out.resolve()), config.recipe.to_dict(), config.classes, config.max_pixels
    )
    _convert_patients(todo, settings, parts, config.workers, progress)
    seconds["images"] = time.perf_counter() - start - seconds["index"] - seconds["plan"]
    index_issues = reconcile_index_issues(index.issues, config.dicom_root, plan.sr_paths)
    summary = _merge(config, plan, split.assignment, split.notes, index_issues, settings_hash,
                     len(todo), reused, replacing)
    seconds["merge"] = time.perf_counter() - start - sum(seconds.values())
    summary.seconds = seconds
    return summary


def _add_hu_copies(plan: ConversionPlan, assignment: dict[str, str],
                   config: ConvertConfig) -> None:
    """Append ``--hu-jitter``'s copies to the tasks of the training patients (not of fused
    screenshots, which carry no HU)."""
    rule = config.hu_jitter
    if not rule.copies:
        return
    for patient_id, patient_plan in plan.patients.items():
        if assignment[patient_id] != "train":
            continue
        patient_plan.tasks = patient_plan.tasks + [
            replace(task, jitter=draw(rule, config.seed, task.name, copy))
            for task in patient_plan.tasks if not task.fused
            for copy in range(1, rule.copies + 1)]


def _merge(
    config: ConvertConfig,
    plan: ConversionPlan,
    assignment: dict[str, str],
    notes: dict[str, str],
    index_issues: list[Issue],
    settings_hash: str,
    converted: int,
    reused: int,
    replacing: Replacement,
) -> ConvertSummary:
    """Join all patients' parts into the dataset, if every patient has one."""
    out, parts = config.out, config.out / ".parts"
    records: list[dict[str, Any]] = []
    issues: list[Issue] = list(index_issues) + list(plan.issues)
    missing = []
    for patient_id, patient_plan in sorted(plan.patients.items()):
        key = _part_key(patient_plan, assignment[patient_id], settings_hash)
        part = _read_part(_part_path(parts, patient_id), key)
        if part is None:
            missing.append(patient_id)
            continue
        records.extend(part["records"])
        issues.extend(Issue.from_json(i) for i in part["issues"])
    counts = {k: sum(1 for i in issues if i.kind == k) for k in sorted({i.kind for i in issues})}
    summary = ConvertSummary(
        out,
        not missing,
        len(plan.patients),
        converted,
        reused,
        len(records),
        sum(len(r["boxes"]) for r in records),
        counts,
    )
    if missing:
        log.info("%d patients still to convert (other shards); not merging", len(missing))
        return summary
    require_boxes(records, issues, len(plan.xml_files), config.annotation_root,
                  len(plan.sr_files))
    letters = {p: plan.patients[p].letter for p in plan.patients}
    manifest = build_manifest(
        records=records,
        issues=issues,
        assignment=assignment,
        letters=letters,
        base=_base(config, notes, plan.lungs_unavailable, records),
        xml_files=plan.xml_files,
        sr_files=plan.sr_files,
    )
    replacing.check_manifest(manifest_bytes(manifest), rendered=converted > 0
                             or not (out / "dataset.json").is_file())
    ledger = Ledger(out)
    ledger.remove_stale({written_path(kind, r["split"], r["name"])
                         for r in records for kind in ("images", "labels")})
    foreign = foreign_images(out, ledger)
    if foreign:
        log.warning("%d files in %s/images and labels were not written by detect convert; "
                    "left alone (ultralytics reads whole folders)", foreign, out)
    write_dataset(out, manifest, records, config.classes)
    return summary


def _base(config: ConvertConfig, notes: dict[str, str], lungs_unavailable: dict[str, str],
          records: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """dataset.json's option fields (without ``records``: no copies listed yet)."""
    augmentation = ({"augmentation": augmentation_section(config.hu_jitter, config.seed, records)}
                    if config.hu_jitter.copies else {})  # absent when off, as before
    return {
        "converter": {
            "name": "detect convert",
            "version": __version__,
            "args": {
                "channels": config.recipe.to_dict()["kind"],
                "classes": config.class_mode,
                "split": list(config.split),
                "seed": config.seed,
                "negatives": config.negatives,
                "negatives_from": config.negatives_from,
                "fused": config.fused,
                "shard": None
                if config.shard is None
                else f"{config.shard.index}/{config.shard.count}",
            },
        },
        "sources": {
            "dicom_root": str(config.dicom_root.resolve()),
            "annotation_root": str(config.annotation_root.resolve()),
        },
        "recipe": config.recipe.to_dict(),
        "classes": list(config.classes),
        "class_mode": config.class_mode,
        "split_fractions": list(config.split),
        "seed": config.seed,
        "split_notes": notes,
        "negatives_per_patient": config.negatives,
        "negatives_rule": {**negatives_rule(config.negatives_from),
                           **({"no_lung_field": dict(sorted(lungs_unavailable.items()))}
                              if config.negatives_from == "lungs" else {})},
        **augmentation,
    }
