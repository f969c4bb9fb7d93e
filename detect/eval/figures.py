"""Figures of the evaluation report: PR curves, FROC curve, confusion matrices (matplotlib,
object API on the Agg canvas, bundled DejaVu fonts, no pyplot state) and galleries of
worst false positives / missed tumours (Pillow overlays on the dataset's PNGs, one
channel in grey, the lung window by default, under a legend of the box colours;
:mod:`detect.io.draw`).

Each function writes one PNG and returns its path, or None with nothing to draw. Imports
of matplotlib happen inside the functions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from detect.errors import DatasetError
from detect.eval.histology import LETTERS
from detect.eval.result import EvalResult
from detect.io.atomic import atomic_path, write_bytes
from detect.io.draw import caption_strip, draw_boxes, grey_to_rgb, legend_strip, resize
from detect.io.png import encode_png, read_png
from detect.recipe import WINDOW_PRESETS, ChannelRecipe

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from detect.eval.result import EvalResult

logger = logging.getLogger(__name__)
TILE = 192
COLUMNS = 4
GREEN, RED, YELLOW = (60, 200, 60), (230, 40, 40), (255, 220, 0)  # RGB


def _figure(width: float = 6.0, height: float = 4.5) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _write_png(path: Path, image: np.ndarray) -> None:
    write_bytes(path, encode_png(image))


def _save(figure: Figure, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def pr_curves(result: EvalResult, path: Path) -> Path | None:
    """Precision-recall per class at IoU 0.5 (COCOeval's interpolated precision)."""
    per_class = result.detection["per_class"]
    curves = {name: c for name, c in per_class.items() if c.get("pr_curve_iou50")}
    if not curves:
        return None
    figure = _figure()
    ax = figure.add_subplot()
    recall = result.detection["recall_thresholds"]
    for name, entry in curves.items():
        ax.plot(recall, entry["pr_curve_iou50"],
                label=f"{name} (n={entry['patients']} patients) AP50={entry['ap50']:.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
           title=f"PR curves at IoU 0.5 ({result.split} split)")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(figure, path)


def froc_curve(result: EvalResult, path: Path) -> Path | None:
    """Sensitivity vs false positives per scan (log2 axis), with the 7 FROC points."""
    froc = result.froc
    if not froc["lesions"]:
        return None
    low, high = 1 / 16, 16.0
    fp = np.clip(np.asarray(froc["curve"]["fp_per_scan"], dtype=float), low, high)
    sensitivity = np.asarray(froc["curve"]["sensitivity"], dtype=float)
    figure = _figure()
    ax = figure.add_subplot()
    ax.step(np.append(fp, high), np.append(sensitivity, sensitivity[-1]), where="post",
            label="FROC curve")
    points = [(r, s) for r, s in zip(froc["rates_fp_per_scan"], froc["sensitivity"])
              if s is not None]
    ax.plot([p[0] for p in points], [p[1] for p in points], "o",
            label=f"CPM points, mean {froc['mean']:.3f}")
    ax.set_xscale("log", base=2)
    ax.set(xlim=(low, high), ylim=(0, 1.02), xlabel="false positives per scan",
           ylabel="sensitivity (lesion level)",
           title=f"FROC, IoU >= {froc['iou']} ({froc['scans']} scans, "
                 f"{froc['lesions']} lesions, {result.counts['patients']} patients)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _save(figure, path)


def confusion_matrices(result: EvalResult, source: str, path: Path) -> Path | None:
    """Slice- and patient-level confusion matrices of one histology source."""
    section = result.histology.get(source, {})
    if not section.get("available"):
        return None
    patients = result.counts["patients_per_letter"]
    figure = _figure(10.0, 4.5)
    for position, level in enumerate(("slice", "patient"), start=1):
        ax = figure.add_subplot(1, 2, position)
        matrix = np.asarray(section[level]["confusion"]["matrix"], dtype=float)
        ax.imshow(matrix, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, f"{int(value)}", ha="center", va="center",
                    color="white" if value > matrix.max() / 2 else "black")
        rows = [f"{letter} (n={int(matrix[k].sum())}, {patients.get(letter, 0)} pat.)"
                for k, letter in enumerate(LETTERS)]
        ax.set_xticks(range(len(LETTERS)), list(LETTERS))
        ax.set_yticks(range(len(LETTERS)), rows)
        ax.set(xlabel="predicted", ylabel="truth",
               title=f"{level} level: bal. acc {_fmt(section[level]['balanced_accuracy'])}")
    figure.suptitle(f"histology from {source}")
    return _save(figure, path)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _tile(image: np.ndarray, focus: Sequence[float], boxes: Sequence[tuple[Sequence[float],
          tuple[int, int, int]]], caption: str) -> np.ndarray:
    height, width = image.shape[:2]
    x1, y1, x2, y2 = focus
    side = max(3 * max(x2 - x1, y2 - y1), 96.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = int(np.clip(cx - side / 2, 0, max(width - side, 0)))
    top = int(np.clip(cy - side / 2, 0, max(height - side, 0)))
    right, bottom = min(width, left + int(side)), min(height, top + int(side))
    canvas = draw_boxes(image, [(box, colour, "") for box, colour in boxes])
    crop = resize(canvas[top:bottom, left:right], TILE, TILE, smooth=False)
    return np.vstack([crop, caption_strip(caption[:30], TILE, 22, 13)])


def _load(root: Path, file_name: str, channel: int) -> np.ndarray | None:
    """One channel of a dataset image, as grey RGB (None: absent, outside the dataset)."""
    path = (root / file_name).resolve()
    if root.resolve() not in path.parents or not path.is_file():
        return None
    try:
        return grey_to_rgb(read_png(path)[..., channel])
    except DatasetError:
        return None


def display_channel(recipe: ChannelRecipe) -> tuple[int, str]:
    """The channel of a dataset image the galleries show in grey, and what it is: the
    lung window where the recipe has one (the default's first channel), the slice itself
    for a 2.5d recipe, else the window with the lowest level (the one that shows lung).
    A three-window image shown as RGB is false colour that no reader knows."""
    if recipe.kind == "2.5d":
        index, window = recipe.offsets.index(0) if 0 in recipe.offsets else 1, recipe.windows[0]
        what = f"the slice itself in its {window.name} window"
    else:
        lung = WINDOW_PRESETS["lung"]
        found = [k for k, w in enumerate(recipe.windows)
                 if w.name == "lung" or (w.width, w.level) == lung]
        index = found[0] if found else min(range(3), key=lambda k: recipe.windows[k].level)
        window = recipe.windows[index]
        what = (f"the {window.name} window" if found else
                f"the {window.name} window (the recipe has no lung window)")
    return index, (f"{what} (W {window.width:g}, L {window.level:g} HU; channel {index + 1} "
                   f"of the dataset's images)")


#: What the box colours of each gallery mean (the image's legend and the report's text).
LEGENDS = {
    "false_positives": ((RED, "detection with no true box"), (GREEN, "true box")),
    "missed": ((YELLOW, "missed true box"), (RED, "detection at or above conf")),
}


def legend_text(kind: str) -> str:
    """The colours of a gallery's boxes in words."""
    names = {RED: "red", GREEN: "green", YELLOW: "yellow"}
    return "; ".join(f"{names[colour]}: {text}" for colour, text in LEGENDS[kind])


def gallery(items: Sequence[Mapping[str, Any]], kind: str, root: Path, path: Path,
            recipe: ChannelRecipe | None = None) -> tuple[Path | None, str]:
    """Overlay tiles of ``kind`` ``false_positives`` or ``missed`` on one channel of the
    dataset's images in grey (:func:`display_channel` of ``recipe``; the first without
    one), under a legend of the box colours (:data:`LEGENDS`). Returns the PNG (or None)
    and a note for the report that says what the grey image and the colours are."""

    if not items:
        return None, "none" if kind == "missed" else "no false positives"
    channel, shown = display_channel(recipe) if recipe is not None else (0, "channel 1")
    tiles, absent = [], 0
    for item in items:
        image = _load(root, item["file_name"], channel)
        if image is None:
            absent += 1
            continue
        if kind == "false_positives":
            boxes = [(g, GREEN) for g in item["gt"]] + [(item["xyxy"], RED)]
            caption = f"{item['patient_id']} {item['label']} s={item['score']:.2f}"
        else:
            boxes = [(d["xyxy"], RED) for d in item["detections"]] + [(item["xyxy"], YELLOW)]
            caption = f"{item['patient_id']} {item['letter'] or ''} missed"
        tiles.append(_tile(image, item["xyxy"], boxes, caption))
    if not tiles:
        return None, f"images not found under {root} ({absent} of {len(items)}); skipped"
    while len(tiles) > COLUMNS and len(tiles) % COLUMNS:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i:i + COLUMNS]) for i in range(0, len(tiles), COLUMNS)]
    legend = legend_strip(LEGENDS[kind], max(rows[0].shape[1], 2 * TILE), 22, 13)
    grid = np.vstack(rows)
    if legend.shape[1] > grid.shape[1]:
        grid = np.hstack([grid, np.zeros((grid.shape[0], legend.shape[1] - grid.shape[1], 3),
                                          np.uint8)])
    _write_png(path, np.vstack([legend, grid]))
    note = (f"{len(items) - absent} shown" + (f", {absent} without image" if absent else "")
            + f". Grey: {shown}. Boxes: {legend_text(kind)}.")
    return path, note


PANEL = 256
PAIRS_PER_ROW = 2
ORANGE = (255, 150, 0)  # RGB


def _panel(grey: np.ndarray, boxes: Sequence[tuple[Sequence[float], tuple[int, int, int],
           str]], caption: str) -> np.ndarray:
    """A whole slice scaled to PANEL px with boxes (and their texts) and a caption strip."""
    height, width = grey.shape[:2]
    scale = PANEL / max(height, width, 1)
    image = resize(grey, round(width * scale), round(height * scale), smooth=True)
    canvas = np.zeros((PANEL, PANEL, 3), dtype=np.uint8)
    canvas[: image.shape[0], : image.shape[1]] = grey_to_rgb(image)
    canvas = draw_boxes(canvas, boxes, scale=scale, text_px=10)
    return np.vstack([canvas, caption_strip(caption[:40], PANEL, 18, 12)])


def side_by_side(slices: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Ground truth and predictions of whole slices, side by side: per slice, the lung
    window with its gt boxes (green) on the left and the detections (red, with score) on
    the right. Each item: ``image`` (H x W uint8 grey), ``gt`` (xyxy px boxes),
    ``detections`` ((xyxy, score) pairs at the operating threshold), optional ``below``
    ((xyxy, score) pairs under it, drawn in orange), ``caption``. Returns the PNG, or None
    when there is nothing to draw."""

    pairs = []
    for item in slices:
        grey = np.asarray(item["image"])
        truth = [(box, GREEN, "") for box in item["gt"]]
        found = [(box, ORANGE, f"{score:.2f}") for box, score in item.get("below", ())]
        found += [(box, RED, f"{score:.2f}") for box, score in item["detections"]]
        caption = str(item["caption"])
        spacer = np.full((PANEL + 18, 4, 3), 255, dtype=np.uint8)
        pairs.append(np.hstack([_panel(grey, truth, f"{caption}: truth"), spacer,
                                _panel(grey, found, f"{caption}: model")]))
    if not pairs:
        return None
    gap = np.full((pairs[0].shape[0], 16, 3), 255, dtype=np.uint8)
    while len(pairs) % PAIRS_PER_ROW:
        pairs.append(np.full_like(pairs[0], 255))
    rows = []
    for start in range(0, len(pairs), PAIRS_PER_ROW):
        row = [pairs[start]]
        for pair in pairs[start + 1 : start + PAIRS_PER_ROW]:
            row += [gap, pair]
        rows.append(np.hstack(row))
        rows.append(np.full((8, rows[-1].shape[1], 3), 255, dtype=np.uint8))
    _write_png(path, np.vstack(rows[:-1]))
    return path
