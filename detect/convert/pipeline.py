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

Patients are split by :mod:`.split` (fractions, or by name with ``--val-patients`` /
``--test-patients``; unknown names are refused) and the dataset is written by
:mod:`.merge`; ``--folds K`` renders the images once into ``OUT/.pool`` and writes K
datasets ``OUT/fold-k`` of hard links (:mod:`.folds`; the replacement rule then reads
the first fold's dataset.json).
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
from detect.convert.folds import POOL, existing_folds, plan_folds, write_folds
from detect.convert.images import TaskResult, WorkerSettings, process_task
from detect.convert.index import CACHE_NAME, build_index
from detect.convert.merge import Merged, Published, collect, publish
from detect.convert.negatives import negatives_rule
from detect.convert.outdir import (
    Ledger,
    check_ownership,
    claim,
    seed_from_parts,
    written_path,
)
from detect.convert.parts import part_key, part_path, read_part, write_part
from detect.convert.plan import ConversionPlan, ImageTask, PatientPlan, plan_conversion
from detect.convert.replace import Replacement
from detect.convert.split import SplitPlan, split_patients
from detect.convert.usable import require_annotations, require_boxes, require_slices
from detect.errors import ConfigError
from detect.io.outlock import hold_out_lock
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
    #: The dataset folders written (one, or one per fold; none for an unfinished shard).
    datasets: list[Published] = field(default_factory=list)


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
    text = json.dumps([settings_hash, list(config.split), config.seed, config.max_pixels,
                       config.val_patients, config.test_patients, config.folds])
    return hashlib.sha256(text.encode()).hexdigest()


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
            write_part(parts, plan, key, [])
    pool = worker_pool(workers) if workers > 1 and len(tasks) > 1 else None
    try:
        for done, ((task, _), result) in enumerate(
            zip(tasks, _results(tasks, settings, pool)), start=1
        ):
            collected[task.patient_id].append(result)
            remaining[task.patient_id] -= 1
            if remaining[task.patient_id] == 0:
                plan, key = by_patient[task.patient_id]
                write_part(parts, plan, key, collected.pop(task.patient_id))
            if progress:
                progress("images", done, len(tasks))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


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


def _named_patients(config: ConvertConfig, letters: dict[str, str]) -> None:
    """Every patient ``--val-patients`` / ``--test-patients`` names must be in the data.

    Raises:
        ConfigError: one line naming the unknown IDs and some that exist.
    """
    for option, ids in (("--val-patients", config.val_patients),
                        ("--test-patients", config.test_patients)):
        unknown = [p for p in ids if p not in letters]
        if unknown:
            known = sorted(letters)
            raise ConfigError(
                f"{option} names {', '.join(unknown)}, not a patient with a converted "
                f"annotation under {config.annotation_root}; its patients are "
                f"{', '.join(known[:12])}{' ...' if len(known) > 12 else ''}"
            )


def _splits(config: ConvertConfig, letters: dict[str, str]
            ) -> tuple[SplitPlan, list[SplitPlan]]:
    """The split the images are rendered with, and with ``--folds`` each fold's (the
    images then all go to the pool's train folder).

    Raises:
        ConfigError: a named patient is not in the data, or too few patients to fold.
    """
    _named_patients(config, letters)
    if config.folds:
        folds = plan_folds(letters, config.folds, config.split, config.seed,
                           config.val_patients)
        return SplitPlan(assignment=dict.fromkeys(letters, "train"), notes={}), folds
    return split_patients(letters, config.split, config.seed,
                          val_patients=config.val_patients,
                          test_patients=config.test_patients), []


def _finished(out: Path) -> Path:
    """The folder whose dataset.json a re-run would replace: OUT's, else (``--folds``) the
    first fold's."""
    if (out / "dataset.json").is_file():
        return out
    folds = [f for f in existing_folds(out) if (f / "dataset.json").is_file()]
    return folds[0] if folds else out


def _publish(config: ConvertConfig, merged: Merged, split: SplitPlan,
             folds: list[SplitPlan], base: dict[str, Any], replacing: Replacement
             ) -> list[Published]:
    """Write the dataset (or each fold's, after the pool dropped images no longer listed);
    the dataset.json that would replace a finished one is checked first (:mod:`.replace`)."""
    rendered = not (replacing.out / "dataset.json").is_file()  # removed: images re-rendered

    def check(folder: Path, data: bytes) -> None:
        if folder == replacing.out:
            replacing.check_manifest(data, rendered=rendered)

    if not folds:
        return [publish(config.out, merged, split, base, check=check)]
    Ledger(config.out / POOL).remove_stale({written_path(kind, "train", r["name"])
                                            for r in merged.records
                                            for kind in ("images", "labels")})
    return write_folds(config.out, merged, folds, base, check=check)


def _convert_locked(
    config: ConvertConfig, progress: Progress | None, settings_hash: str
) -> ConvertSummary:
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    out = config.out
    rendered = out / POOL if config.folds else out  # where the images are rendered
    replacing = Replacement.of(_finished(out), config.overwrite)
    replacing.check_options(_base(config, {}))
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
        stacking=config.recipe.stacking,
        fused_mode=config.fused,
        negatives=config.negatives,
        seed=config.seed,
        workers=config.workers,
        max_pixels=config.max_pixels,
        exclude=[out],
        negatives_from=config.negatives_from,
    )
    require_annotations(plan, config.annotation_root)
    split, folds = _splits(config, {p: plan.patients[p].letter for p in plan.patients})
    _add_hu_copies(plan, split.assignment, config)
    parts = rendered / ".parts"
    todo, reused = [], 0
    for patient_id, patient_plan in sorted(plan.patients.items()):
        key = part_key(patient_plan, split.assignment[patient_id], settings_hash)
        if not _in_shard(patient_id, config.shard):
            continue
        if read_part(part_path(parts, patient_id), key) is not None:
            reused += 1
            continue
        todo.append((patient_plan, split.assignment[patient_id], key))
    seconds["plan"] = time.perf_counter() - start - seconds["index"]
    rendered.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(rendered)
    seed_from_parts(ledger, parts)
    replacing.check_inputs(sum(replacing.changed(p.patient_id, part_path(parts, p.patient_id))
                               for p, _, _ in todo))
    if todo:  # stale until this run merges
        for folder in [out, *existing_folds(out)]:
            (folder / "dataset.json").unlink(missing_ok=True)
        ledger.record(
            written_path(kind, split_name, task.name)
            for plan_, split_name, _ in todo
            for task in plan_.tasks
            for kind in ("images", "labels")
        )
    settings = WorkerSettings(
        str(rendered.resolve()), config.recipe.to_dict(), config.classes, config.max_pixels
    )
    _convert_patients(todo, settings, parts, config.workers, progress)
    seconds["images"] = time.perf_counter() - start - seconds["index"] - seconds["plan"]
    index_issues = reconcile_index_issues(index.issues, config.dicom_root, plan.sr_paths)
    merged, missing = collect(plan, split.assignment, parts, settings_hash, index_issues)
    summary = ConvertSummary(
        out, not missing, len(plan.patients), len(todo), reused, len(merged.records),
        sum(len(r["boxes"]) for r in merged.records),
        {k: sum(1 for i in merged.issues if i.kind == k)
         for k in sorted({i.kind for i in merged.issues})},
    )
    if missing:
        log.info("%d patients still to convert (other shards); not merging", len(missing))
    else:
        require_boxes(merged.records, merged.issues, len(plan.xml_files),
                      config.annotation_root, len(plan.sr_files))
        summary.datasets = _publish(config, merged, split, folds,
                                    _base(config, plan.lungs_unavailable, merged.records),
                                    replacing)
    seconds["merge"] = time.perf_counter() - start - sum(seconds.values())
    summary.seconds = seconds
    return summary


def _add_hu_copies(plan: ConversionPlan, assignment: dict[str, str],
                   config: ConvertConfig) -> None:
    """Append ``--hu-jitter``'s copies to the tasks of the patients rendered into train
    (with ``--folds`` every patient of the pool: :func:`.merge.publish` keeps a copy only
    where its patient trains). Fused screenshots carry no HU and get none."""
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


def _base(config: ConvertConfig, lungs_unavailable: dict[str, str],
          records: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """dataset.json's option fields (the split's notes are added by :func:`.merge.publish`;
    without ``records`` no HU copy is listed yet)."""
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
                "val_patients": list(config.val_patients),
                "test_patients": list(config.test_patients),
                "folds": config.folds,
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
        "negatives_per_patient": config.negatives,
        "negatives_rule": {**negatives_rule(config.negatives_from),
                           **({"no_lung_field": dict(sorted(lungs_unavailable.items()))}
                              if config.negatives_from == "lungs" else {})},
        **augmentation,
    }
