"""``detect eval --series PREDICT_OUT --annotations ANNOTATION_ROOT``: score what
``detect predict`` found on every slice of whole CT series (its ``slices.csv`` and
``predictions.json``) against the archive's VOC boxes, with :mod:`detect.eval.series`
(the scoring of the demo's real-CT stage and the real-data benchmark): AP on the
annotated slices and on every slice, FROC sensitivity per series, patients found.

Writes ``OUT/series.json`` (the figures, settings, counts, warnings) and ``report.md`` /
``report.html``. Predictions cut above :data:`~detect.predictions.SCORING_CONF` are
scored, with a warning: run ``detect predict --conf 0`` for scoring. OUT follows eval's
rule (:mod:`detect.eval.outdir`): a report there is refused unless ``overwrite``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detect.errors import ConfigError
from detect.eval.outdir import check_out, eval_output
from detect.eval.report import Block, series_blocks, write_documents
from detect.eval.score import cut_warning
from detect.eval.series import SeriesScore, read_predicted_series
from detect.io.atomic import write_text
from detect.predictions import operating_threshold_of, recorded_threshold

SERIES_FORMAT = "detect-eval-series"


@dataclass(frozen=True)
class SeriesEvalConfig:
    """Options of ``detect eval --series``: ``series`` is a ``detect predict`` output
    folder, ``annotations`` the VOC XML root (``<ann>/<patient>/<SOPInstanceUID>.xml``);
    ``out`` defaults to ``<series>/eval-series``. ``conf`` is the operating threshold of
    "patient found" (None: the model's threshold the records carry, else their cut when it
    is above SCORING_CONF, else :data:`~detect.predictions.DEFAULT_CONF`); ``iou`` the hit
    IoU; ``near_slices`` how far from an annotated slice an overlapping detection is
    ignored (0: strict)."""

    series: Path
    annotations: Path
    out: Path | None = None
    conf: float | None = None
    iou: float = 0.1
    near_slices: int = 2
    overwrite: bool = False

    def __post_init__(self) -> None:
        missing = [name for name in ("slices.csv", "predictions.json")
                   if not (self.series / name).is_file()]
        if missing:
            raise ConfigError(
                f"--series {self.series} is not a detect predict output folder (no "
                f"{' or '.join(missing)}); pass the --out of detect predict ... --save json")
        if not self.annotations.is_dir():
            raise ConfigError(f"--annotations {self.annotations} is not a folder; pass the "
                              f"annotation root (<ann>/<patient>/<SOPInstanceUID>.xml)")
        if self.conf is not None and not 0.0 <= self.conf <= 1.0:
            raise ConfigError(f"--conf must be in [0, 1], got {self.conf}")
        if not 0.0 < self.iou <= 1.0:
            raise ConfigError(f"--iou-froc must be in (0, 1], got {self.iou}")
        if self.near_slices < 0:
            raise ConfigError(f"--near-slices must be >= 0, got {self.near_slices}")

    @property
    def out_dir(self) -> Path:
        return self.out if self.out is not None else self.series / "eval-series"


@dataclass(frozen=True)
class SeriesEvalRun:
    """What ``run_series_eval`` measured and wrote."""

    score: SeriesScore
    warnings: tuple[str, ...]
    files: dict[str, Path]


def run_series_eval(config: SeriesEvalConfig) -> SeriesEvalRun:
    """Score a predict output folder over whole series (module docstring).

    Raises:
        DetectError: the folder is not predict's, or OUT cannot be written (one line).
        OutputFolderError: OUT holds a report (without ``overwrite``) or someone else's
            files.
    """
    check_out(config.out_dir, config.overwrite)
    read = read_predicted_series(config.series / "slices.csv",
                                 config.series / "predictions.json", config.annotations)
    cut = recorded_threshold(read.predictions)
    conf = config.conf
    if conf is None:
        conf = operating_threshold_of(read.predictions)
    score = read.score(conf=conf, near_slices=config.near_slices, iou=config.iou)
    warnings = tuple(w for w in (cut_warning(read.predictions),) if w)
    if read.annotations.skipped:
        warnings += (f"{len(read.annotations.skipped)} annotation files gave no box (e.g. "
                     f"{read.annotations.skipped[0][0]}: {read.annotations.skipped[0][1]})",)
    out = config.out_dir
    record: dict[str, Any] = {
        "format": SERIES_FORMAT, "version": 1,
        "sources": {"series": str(config.series.resolve()),
                    "annotations": str(config.annotations.resolve())},
        "records_cut_at": cut, **score.to_dict(), "warnings": list(warnings),
    }
    with eval_output(out, config.overwrite):
        write_text(out / "series.json", json.dumps(record, indent=1))
        files = {"series": out / "series.json",
                 **write_documents(_blocks(config, score, warnings), out,
                                   "detect eval: series")}
    return SeriesEvalRun(score, warnings, files)


def _blocks(config: SeriesEvalConfig, score: SeriesScore, warnings: tuple[str, ...]
            ) -> list[Block]:
    about = (f"detect predict output {config.series} (every slice it read) scored against "
             f"the boxes under {config.annotations}.")
    return [("h1", "detect eval: whole series"),
            *(("note", f"Warning: {text}") for text in warnings),
            *series_blocks(score, None, title="Whole-series scores", about=about)]
