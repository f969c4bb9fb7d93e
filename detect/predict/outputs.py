"""What a prediction run writes at its end (predictions.json, the CSVs, the SRs), and the
removal of everything a run wrote when it fails.

Every file is listed in ``written`` before it is written, so a run that fails at any point
(a server fault, a full disk, Ctrl-C) can remove exactly its own files and the folders it
made empty, and OUT itself when it created it: no half-written result is left behind and
nothing of anyone else is touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from detect.errors import ConfigError
from detect.io.paths import inside
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

_TABLES = {"predictions": "predictions.json", "summary": "summary.csv",
           "slices": "slices.csv", "skipped": "skipped.csv"}


def write_outputs(
    out: Path,
    save: Sequence[str],
    results: Sequence[SliceResult],
    skipped: Sequence[Skipped],
    pixel_errors: Sequence[tuple[str, str]],
    series_seen: Sequence[tuple[str, str]],
    srs: Sequence[BuiltSr],
    *,
    head: bool,
    written: list[Path],
) -> dict[str, Path]:
    """Write the run's end files; their names by kind (``voc``/``png``/``sr``: folders).

    Raises:
        ConfigError: the SR files cannot be written.
    """
    files = {key: out / name for key, name in _TABLES.items()
             if key != "predictions" or "json" in save}
    written += files.values()
    if "json" in save:
        write_predictions(files["predictions"], [p for r in results for p in r.predictions])
    write_csv(files["summary"], SUMMARY_COLUMNS,
              summary_rows(results, dict(series_seen), head=head))
    write_csv(files["slices"], SLICE_COLUMNS, slice_rows(results))
    rows = [{"path": s.path, "reason": s.reason, "detail": s.detail} for s in skipped]
    rows += [{"path": p, "reason": "pixel-error", "detail": d} for p, d in pixel_errors]
    write_csv(files["skipped"], ("path", "reason", "detail"), rows)
    for kind in ("voc", "png"):
        if kind in save:
            files[kind] = out / kind
    if "sr" in save:
        _save_srs(out, srs, written)
        files["sr"] = out / "sr"
    return files


def _save_srs(out: Path, srs: Sequence[BuiltSr], written: list[Path]) -> list[Path]:
    from detect.predict.sr import save_srs

    written += [inside(out, *one.parts) for one in srs]
    try:
        return save_srs(out, srs)
    except OSError as exc:
        raise ConfigError(f"cannot write DICOM SR files into {out} ({exc}); free space or "
                          f"pass another --out") from None


def remove_written(out: Path, written: Sequence[Path], created: bool) -> None:
    """Remove the files in ``written``, then the folders under ``out`` they leave empty,
    and ``out`` when this run ``created`` it and nothing else is in it."""
    folders: set[Path] = set()
    for path in written:
        path.unlink(missing_ok=True)
        folders.update(p for p in path.parents if out in p.parents)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty: something else is in it
            folder.rmdir()
    if created and out.is_dir() and not any(out.iterdir()):
        out.rmdir()
