"""The README.md an exported folder carries, so it describes itself at a demo: what the
model is (family, classes, input, channel recipe, what it was trained on and its best
epoch), the parity check it passed, the one command that runs it (the base install is
enough for ONNX), its card when the run folder had one (copied as CARD.md), and that it is
not for clinical use. Every value comes from the validated model.json."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from detect.io.atomic import write_text
from detect.runs import ModelInfo

CARD = "CARD.md"


def _windows(info: ModelInfo) -> str:
    recipe = info.manifest["recipe"]
    windows = ", ".join(f"{w['name']} ({w['width_hu']:g}/{w['level_hu']:g} HU)"
                        for w in recipe["windows"])
    offsets = recipe.get("slice_offsets") or [0, 0, 0]
    if len(set(offsets)) == 1:
        return windows
    step = recipe.get("slice_step_mm")
    unit = "distinct positions" if step is None else f"steps of about {step:g} mm"
    return f"{windows}, slices {offsets} ({unit} along the axis, in the slice's acquisition)"


def _metrics(manifest: Mapping[str, Any]) -> str:
    metrics = manifest.get("metrics") or {}
    shown = [f"{key} {value:.3f}" for key, value in metrics.items()
             if key != "epoch" and isinstance(value, float)]
    if not shown:
        return "not recorded"
    return f"epoch {metrics.get('epoch')}: " + ", ".join(shown) + " (validation split)"


def write_readme(out: Path, info: ModelInfo, record: Mapping[str, Any], parity: str) -> Path:
    """Write ``out/README.md`` (and ``out/CARD.md`` from the source run, if it has one)."""
    card = info.root / CARD
    has_card = card.is_file()
    if has_card:
        shutil.copyfile(card, out / CARD)
    manifest = info.manifest
    size = f"{manifest['family']}{manifest.get('size') or ''}"
    fmt, file = record["format"], record["file"]
    runs_with = ("the base install is enough: `pip install detect`" if fmt == "onnx"
                 else "needs torch: `pip install 'detect[train]'`")
    lines = [
        f"# {size} ({manifest['family']}), exported to {fmt}",
        "",
        "Not for clinical use: a research model, to show what detect does.",
        "",
        "| | |",
        "|---|---|",
        f"| file | `{file}` (SHA-256 `{record['sha256'][:16]}...`), with `model.json` beside it |",
        f"| classes | {', '.join(info.classes)} (`{info.class_mode}`) |",
        f"| input | {info.imgsz} px, channels: {_windows(info)} |",
        f"| operating threshold | {info.conf:g} (model.json `thresholds.conf`) |",
        f"| trained on | dataset `{manifest.get('dataset', {}).get('fingerprint', '?')[:16]}...`,"
        f" {len(manifest.get('dataset', {}).get('splits', {}).get('train', []))} training "
        f"patients |",
        f"| best epoch | {_metrics(manifest)} |",
        f"| parity with PyTorch | passed: {parity} |",
        f"| card | {'[CARD.md](CARD.md)' if has_card else 'none with the source run'} |",
        "",
        f"Run it on a folder of DICOM CT ({runs_with}):",
        "",
        "```bash",
        f"detect predict DICOM_FOLDER --weights {file} --save json,voc,png,sr --out predictions",
        "```",
        "",
        "The model.json beside the file says how it was made and how to feed it; detect "
        "refuses the file if its SHA-256 no longer matches.",
        "",
    ]
    path = out / "README.md"
    write_text(path, "\n".join(lines))
    return path
