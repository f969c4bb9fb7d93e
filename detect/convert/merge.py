"""From finished parts to a dataset folder: read every patient's part back
(:func:`collect`), then write one dataset of them with a given patient split
(:func:`publish`): images placed, COCO files, data.yaml and dataset.json.

A val split without a patient (a cohort too small to spare one) is filled with every
:data:`VAL_EVERY`-th training image (never an HU-jittered copy), so every family can
train; dataset.json says so (``val_from_train``; ``empty_splits`` says why each split has
no patient of its own) and lists those patients under ``splits.val`` too, so the leakage
guard refuses to score val as held out. Images that already exist under another split or
in another folder (``--folds``) are hard-linked, not rendered again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detect.convert.issues import Issue
from detect.convert.links import link_or_copy
from detect.convert.manifest import build_manifest, manifest_bytes, write_dataset
from detect.convert.outdir import Ledger, foreign_images, written_path
from detect.convert.parts import part_key, part_path, read_part
from detect.convert.plan import ConversionPlan
from detect.convert.split import SplitPlan
from detect.errors import OutputFolderError
from detect.io.paths import inside

log = logging.getLogger(__name__)

#: A val split made of training images takes every VAL_EVERY-th of them (dataset order).
VAL_EVERY = 4
_SUFFIX = {"images": ".png", "labels": ".txt"}
#: Called with a dataset folder and its new dataset.json's bytes before the folder changes.
Check = Callable[[Path, bytes], None]


@dataclass(frozen=True)
class Merged:
    """Every patient's part of a complete conversion: the images (records, each with the
    split folder its files were written into), the issues and the inputs' accounting."""

    records: list[dict[str, Any]]
    issues: list[Issue]
    letters: dict[str, str]
    xml_files: list[str]
    sr_files: list[str]


def collect(plan: ConversionPlan, assignment: dict[str, str], parts: Path,
            settings_hash: str, index_issues: list[Issue]) -> tuple[Merged, list[str]]:
    """The parts of every patient of ``plan`` (as split by ``assignment``), and the
    patients whose part is still missing (other shards)."""
    records: list[dict[str, Any]] = []
    issues: list[Issue] = list(index_issues) + list(plan.issues)
    missing = []
    for patient_id, patient_plan in sorted(plan.patients.items()):
        key = part_key(patient_plan, assignment[patient_id], settings_hash)
        part = read_part(part_path(parts, patient_id), key)
        if part is None:
            missing.append(patient_id)
            continue
        records.extend(part["records"])
        issues.extend(Issue.from_json(i) for i in part["issues"])
    letters = {p: plan.patients[p].letter for p in plan.patients}
    return Merged(records, issues, letters, plan.xml_files, plan.sr_files), missing


@dataclass(frozen=True)
class Published:
    """One dataset folder written: its counts per split (dataset.json ``counts``) and the
    warnings about its splits (split → sentence)."""

    out: Path
    counts: dict[str, dict[str, Any]]
    warnings: dict[str, str]
    #: Images of val copied from train (0: val has its own patients, or none).
    val_from_train: int = 0


def val_from_train(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Val copies of every :data:`VAL_EVERY`-th training record in image-name order
    (patient, then SOP Instance UID: spread over the slices without following them), the
    choice ``tools/real_protocol.py`` made for the shipped real model."""
    train = sorted((r for r in records if r["split"] == "train" and not r.get("hu_jitter")),
                   key=lambda r: r["name"])
    return [{**r, "split": "val"} for r in train[::VAL_EVERY]]


def split_warnings(plan: SplitPlan, val_images: int) -> dict[str, str]:
    """What each empty split means for the user, and why it is empty."""
    warnings: dict[str, str] = {}
    for name, why in sorted(plan.empty.items()):
        if name == "val" and val_images:
            warnings[name] = (
                f"no val patient: {why}. val holds every {VAL_EVERY}th training image "
                f"({val_images} images of the training patients), so the best epoch is "
                f"chosen on slices the model trains on; name a val patient with "
                f"--val-patients where one can be spared")
        elif name == "val":
            warnings[name] = f"no val patient: {why}; and no training image to fill it"
        elif name == "test":
            warnings[name] = (
                f"no test patient: {why}. Nothing to evaluate on (detect eval --split test "
                f"refuses this dataset): name test patients with --test-patients, or write "
                f"leave-out datasets with --folds K")
        else:
            warnings[name] = f"no train patient: {why}. Nothing to train on"
    return warnings


def _place(out: Path, source: Path, origin: dict[str, str], records: list[dict[str, Any]]
           ) -> None:
    """Hard-link (or copy) each record's image and label from where it was written
    (``source/<kind>/<origin split>``) to ``out/<kind>/<its split>``, where they differ."""
    for record in records:
        for kind, suffix in _SUFFIX.items():
            name = f"{record['name']}{suffix}"
            src = inside(source, kind, origin[record["name"]], name)
            dst = inside(out, kind, record["split"], name)
            if src == dst:
                continue
            try:
                link_or_copy(src, dst)
            except OSError as exc:
                raise OutputFolderError(
                    f"cannot place {dst} from {src} ({exc.strerror}); re-run detect convert "
                    f"(it re-renders what is missing)") from None


def _kept_copies(base: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """``base`` with dataset.json's list of HU copies cut to the images this dataset has."""
    augmentation = base.get("augmentation")
    if not augmentation:
        return base
    copies = [c for c in augmentation["copies"] if c["name"] in names]
    return {**base, "augmentation": {**augmentation, "copies": copies}}


def publish(out: Path, merged: Merged, split: SplitPlan, base: dict[str, Any], *,
            source: Path | None = None, check: Check | None = None) -> Published:
    """Write the dataset of ``merged`` with the patients split by ``split`` into ``out``.

    ``source`` is the folder the records' files were rendered into (default ``out``);
    files are linked from there into their split folders. Only files listed in ``out``'s
    ledger are ever removed. ``check(out, bytes of the new dataset.json)`` runs before
    anything in ``out`` changes (convert's replacement rule, :mod:`.replace`).

    Raises:
        OutputFolderError: an image cannot be placed, or ``check`` refuses.
    """
    source = out if source is None else source
    origin = {r["name"]: r["split"] for r in merged.records}
    records = [{**r, "split": split.assignment[r["patient_id"]]} for r in merged.records]
    # HU-jittered copies (--hu-jitter) are training images only: with --folds the pool
    # renders them for every patient, and a fold keeps those of its training patients.
    records = [r for r in records if r["split"] == "train" or not r.get("hu_jitter")]
    base = _kept_copies(base, {r["name"] for r in records})
    extra = val_from_train(records) if "val" in split.empty else []
    records += extra
    filled = None
    if extra:
        filled = {"every": VAL_EVERY, "images": len(extra),
                  "patients": sorted({r["patient_id"] for r in extra})}
    manifest = build_manifest(
        records=records, issues=merged.issues, assignment=split.assignment,
        letters=merged.letters,
        base={**base, "split_notes": split.notes, "split_placed": split.placed,
              "empty_splits": dict(sorted(split.empty.items())), "val_from_train": filled},
        xml_files=merged.xml_files, sr_files=merged.sr_files,
    )
    if check is not None:
        check(out, manifest_bytes(manifest))
    keep = {written_path(kind, r["split"], r["name"]) for r in records for kind in _SUFFIX}
    ledger = Ledger(out)
    ledger.record(sorted(keep))
    _place(out, source, origin, records)
    ledger.remove_stale(keep)
    foreign = foreign_images(out, ledger)
    if foreign:
        log.warning("%d files in %s/images and labels were not written by detect convert; "
                    "left alone (ultralytics reads whole folders)", foreign, out)
    write_dataset(out, manifest, records, list(manifest["classes"]))
    return Published(out, manifest["counts"], split_warnings(split, len(extra)), len(extra))
