"""Whose files are in OUT: convert writes only into a folder that is new, empty or its
own, and deletes only files it wrote itself.

- Ownership: ``OUT/.detect-convert.json`` (the marker) is written when convert first
  takes a folder; a folder with the marker, or with a dataset.json of detect's format
  (datasets from before the marker), is detect's. A non-empty folder that is neither is
  refused, with or without ``--overwrite`` (which replaces only a dataset detect wrote,
  :mod:`.replace`; writing dataset.json, data.yaml or coco/ there would replace the
  user's files of those names).
- The ledger (:mod:`detect.io.ledger`): ``OUT/.detect-written`` lists every image and
  label path convert may have written, one per line, recorded before the workers write
  them (so an interrupted run is covered too). When a re-run drops an image (another
  split, a patient gone), only paths in the ledger are ever deleted; a PNG the user put
  into images/train stays.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path, PurePosixPath

from detect import __version__
from detect.convert.split import SPLIT_NAMES
from detect.dataset import DATASET_FORMAT
from detect.errors import OutputFolderError
from detect.io.atomic import write_json
from detect.io.ledger import Ledger as FolderLedger
from detect.io.outlock import GUARD_NAME, LOCK_NAME
from detect.io.paths import SAFE_NAME

log = logging.getLogger(__name__)

MARKER_NAME = ".detect-convert.json"
_OURS = frozenset({LOCK_NAME, GUARD_NAME})
_KINDS = {"images": ".png", "labels": ".txt"}


def _is_detect_dataset(out: Path) -> bool:
    try:
        data = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and data.get("format") == DATASET_FORMAT


def check_ownership(out: Path) -> None:
    """Refuse an OUT that holds files detect did not write (before anything is written).

    Raises:
        OutputFolderError: OUT is a file, or a non-empty folder of someone else's files.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputFolderError(f"OUT {out} is a file; expected a new or empty folder")
    if (out / MARKER_NAME).is_file() or _is_detect_dataset(out):
        return
    if (out / ".parts").is_dir() and (out / ".cache").is_dir():
        return  # a run interrupted before the marker existed
    try:
        foreign = sorted(name for name in os.listdir(out) if name not in _OURS)
    except OSError as exc:
        raise OutputFolderError(f"cannot list OUT {out} ({exc.strerror})") from None
    if foreign:
        raise OutputFolderError(
            f"OUT {out} is not empty ({len(foreign)} entries, e.g. {foreign[0]!r}) and was "
            f"not written by detect convert; write into a new or empty folder (--overwrite "
            f"replaces only a dataset detect wrote, never other files)"
        )


def claim(out: Path) -> None:
    """Mark OUT as detect convert's (once)."""
    marker = out / MARKER_NAME
    if not marker.is_file():
        write_json(marker, {"written_by": "detect convert", "version": __version__})


def written_path(kind: str, split: str, name: str) -> str:
    """The relative path of an image (``kind`` images) or label (labels) convert writes."""
    return f"{kind}/{split}/{name}{_KINDS[kind]}"


def _valid(rel: str) -> bool:
    """A ledger line that names an image or label path and nothing else."""
    parts = PurePosixPath(rel).parts
    return (
        len(parts) == 3
        and parts[0] in _KINDS
        and parts[1] in SPLIT_NAMES
        and parts[2].endswith(_KINDS[parts[0]])
        and SAFE_NAME.fullmatch(parts[2]) is not None
        and not parts[2].startswith(".")
    )


class Ledger(FolderLedger):
    """The images and labels convert may have written under OUT (module docstring)."""

    def __init__(self, out: Path) -> None:
        super().__init__(out, _valid)


def seed_from_parts(ledger: Ledger, parts: Path) -> None:
    """A dataset from before the ledger: record what its per-patient parts list."""
    if ledger.path.exists() or not parts.is_dir():
        return
    found: list[str] = []
    for part in sorted(parts.glob("*.json")):
        try:
            records = json.loads(part.read_text(encoding="utf-8")).get("records", [])
            for record in records:
                for kind in _KINDS:
                    found.append(written_path(kind, str(record["split"]), str(record["name"])))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError,
                KeyError, TypeError):
            log.warning("%s is not a readable part file; its images are not in the ledger",
                        part)
    ledger.record(found)


def foreign_images(out: Path, ledger: Ledger) -> int:
    """How many files in images/ and labels/ convert did not write (ultralytics reads
    whole folders, so the user should know)."""
    ours = ledger.paths()
    count = 0
    for kind in _KINDS:
        for split in SPLIT_NAMES:
            folder = out / kind / split
            if folder.is_dir():
                count += sum(1 for p in folder.iterdir()
                             if f"{kind}/{split}/{p.name}" not in ours)
    return count
