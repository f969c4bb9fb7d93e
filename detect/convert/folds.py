"""``detect convert --folds K``: K datasets ``OUT/fold-1`` ... ``OUT/fold-K`` from one
conversion, each testing one group of patients (:func:`detect.convert.split.fold_splits`).

The images are rendered once, into ``OUT/.pool`` (every patient's PNG and label, as a
train split, with its own parts, ledger and resume), and each fold folder is a complete
dataset (dataset.json, coco/, data.yaml, images/, labels/) whose files are hard links to
the pool's (copies where the file system cannot link): K folds cost the disk and time of
one conversion. Every family trains on a fold folder as on any dataset; its dataset.json
``fold`` says which fold it is and which patients it tests.

Re-running with the same options relinks nothing that is in place; with another K, folds
beyond K that convert wrote are retired (their dataset.json and the files in their ledger
removed), so a loop over ``fold-*/dataset.json`` never meets a stale fold.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from detect.convert.merge import Check, Merged, Published, publish
from detect.convert.outdir import MARKER_NAME, Ledger, check_ownership, claim
from detect.convert.split import SplitPlan, fold_splits
from detect.errors import ConfigError

log = logging.getLogger(__name__)

#: Where ``--folds`` renders the images every fold links to.
POOL = ".pool"
_FOLD = re.compile(r"^fold-(\d+)$")
_WRITTEN = ("dataset.json", "data.yaml", "coco/train.json", "coco/val.json", "coco/test.json")


def fold_dir(out: Path, index: int) -> Path:
    return out / f"fold-{index}"


def plan_folds(letters: Mapping[str, str], folds: int, fractions: tuple[float, float, float],
               seed: int, val_patients: tuple[str, ...]) -> list[SplitPlan]:
    """The split of every fold.

    Raises:
        ConfigError: fewer patients to rotate than folds.
    """
    try:
        return fold_splits(letters, folds, fractions, seed, val_patients=val_patients)
    except ValueError:
        rotating = sorted(set(letters) - set(val_patients))
        raise ConfigError(
            f"--folds {folds} needs at least {folds} patients to test, one group per fold; "
            f"this dataset has {len(rotating)} ({', '.join(rotating[:10])}"
            f"{' ...' if len(rotating) > 10 else ''}); pass --folds between 2 and "
            f"{len(rotating)}"
        ) from None


def existing_folds(out: Path) -> list[Path]:
    """Fold folders convert wrote into ``out`` (they carry its marker), in index order."""
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir()
             if (m := _FOLD.match(p.name)) and (p / MARKER_NAME).is_file()]
    return [p for _, p in sorted(found)]


def write_folds(out: Path, merged: Merged, plans: list[SplitPlan], base: Mapping[str, Any],
                *, check: Check | None = None) -> list[Published]:
    """Write fold k of ``plans`` into ``out/fold-k`` (module docstring).

    Raises:
        OutputFolderError: a fold folder holds files convert did not write, or an image
            cannot be placed.
    """
    written = []
    for index, plan in enumerate(plans, start=1):
        folder = fold_dir(out, index)
        check_ownership(folder)
        folder.mkdir(parents=True, exist_ok=True)
        claim(folder)
        fold = {"index": index, "count": len(plans), "test_patients": plan.patients("test"),
                "images": f"hard links to {out.name}/{POOL}, one conversion shared by every "
                          f"fold"}
        written.append(publish(folder, merged, plan, {**base, "fold": fold},
                               source=out / POOL, check=check))
    _retire(out, len(plans))
    return written


def _retire(out: Path, count: int) -> None:
    """Folds beyond ``count`` from an earlier run: remove what convert wrote there."""
    for folder in existing_folds(out):
        index = int(folder.name.split("-")[1])
        if index <= count:
            continue
        Ledger(folder).remove_stale(set())
        for name in _WRITTEN:
            (folder / name).unlink(missing_ok=True)
        log.warning("%s was fold %d of an earlier run with more folds: its dataset removed",
                    folder, index)
