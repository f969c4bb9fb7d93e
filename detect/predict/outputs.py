"""What a prediction run collects series by series (:class:`Collected`), and the files it
writes at its end: predictions.json, summary.csv, slices.csv, skipped.csv, lesions.json,
lesions.csv and the SRs.

Every path goes into OUT's ledger (``record``) before it is written, so a run that fails
part-way leaves nothing the next run mixes with (:mod:`detect.predict.outdir`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from detect.lesions import LinkRule
from detect.lung import LungFieldRule
from detect.predict.lesions import SeriesLesions, write_lesions
from detect.predict.sources import Skipped
from detect.predict.writers import (
    SLICE_COLUMNS,
    SUMMARY_COLUMNS,
    SliceResult,
    slice_rows,
    summary_rows,
    write_csv,
)
from detect.predictions import write_predictions

if TYPE_CHECKING:
    from detect.predict.sr import BuiltSr


@dataclass
class Collected:
    """Everything a run found, whatever its source: each slice's result, the slices whose
    pixels failed (label, reason, detail), the files skipped before decoding, each series'
    lesions and description (every series read), and the SRs built so far."""

    results: list[SliceResult] = field(default_factory=list)
    pixel_errors: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    lesions: list[SeriesLesions] = field(default_factory=list)
    descriptions: dict[str, str] = field(default_factory=dict)
    srs: list[BuiltSr] = field(default_factory=list)
    files_seen: int = 0


@dataclass(frozen=True)
class OutputRules:
    """How the run read its boxes, as its end files state it."""

    save: tuple[str, ...]
    threshold: float
    head: bool
    lung_rule: LungFieldRule | None
    link_rule: LinkRule


def write_outputs(out: Path, collected: Collected, rules: OutputRules,
                  record: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Write the run's end files; their paths by kind (``voc``/``png``/``sr``: folders).

    Raises:
        OSError: a file cannot be written (the caller names the problem).
    """
    files: dict[str, Path] = {}
    results = collected.results
    if "json" in rules.save:
        files["predictions"] = out / "predictions.json"
        write_predictions(files["predictions"], [p for r in results for p in r.predictions])
    lesions = collected.lesions
    files["summary"] = out / "summary.csv"
    write_csv(files["summary"], SUMMARY_COLUMNS,
              summary_rows(results, collected.descriptions, threshold=rules.threshold,
                           head=rules.head,
                           lesions={s.series_instance_uid: len(s.lesions) for s in lesions},
                           lung_field={s.series_instance_uid: s.lung_field for s in lesions}))
    files["slices"] = out / "slices.csv"
    write_csv(files["slices"], SLICE_COLUMNS, slice_rows(results))
    files["skipped"] = out / "skipped.csv"
    rows = [{"path": s.path, "reason": s.reason, "detail": s.detail}
            for s in collected.skipped]
    rows += [{"path": p, "reason": r, "detail": d} for p, r, d in collected.pixel_errors]
    write_csv(files["skipped"], ("path", "reason", "detail"), rows)
    lung = None if rules.lung_rule is None else rules.lung_rule.to_dict()
    files.update(write_lesions(out, lesions, rules.link_rule, lung))
    for kind in ("voc", "png"):
        if kind in rules.save:
            files[kind] = out / kind
    if "sr" in rules.save:
        from detect.predict.sr import SR_DIR, save_srs

        save_srs(out, collected.srs, record)
        files["sr"] = out / SR_DIR
    return files
