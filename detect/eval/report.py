"""The evaluation report: metrics.json, report.md and a self-contained report.html
(figures embedded as base64 PNG), built from one list of blocks so both say the same.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detect.dataset import DatasetInfo
from detect.errors import OutputFolderError
from detect.eval import figures
from detect.eval.bootstrap import ONE_PATIENT
from detect.eval.froc import FROC_RATES
from detect.eval.markdown import Block, to_markdown
from detect.eval.result import EvalResult
from detect.eval.series import SeriesScore
from detect.io.atomic import write_text

logger = logging.getLogger(__name__)

HEADLINE = (
    ("map50", "mAP50 (COCO)"),
    ("map50_95", "mAP50-95 (COCO)"),
    ("ap10", "AP at IoU 0.1"),
    ("froc_mean", "FROC mean sensitivity (1/8-8 FP/scan)"),
    ("patient_sensitivity", "per-patient sensitivity at conf"),
    ("patient_balanced_accuracy_detector", "patient balanced accuracy, detector letters"),
    ("patient_balanced_accuracy_head", "patient balanced accuracy, histology head"),
)


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table ('n/a' for None)."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


@dataclass(frozen=True)
class Report:
    """A written evaluation report: its files by name and the blocks report.md and
    report.html were rendered from."""

    out: Path
    files: dict[str, Path]
    blocks: list[Block]
    title: str

    def append(self, extra: Sequence[Block]) -> Report:
        """Render report.md and report.html again with ``extra`` blocks (e.g.
        :func:`series_blocks`) at the end; metrics.json and the figures stay as written."""
        blocks = [*self.blocks, *extra]
        files = {**self.files, **write_documents(blocks, self.out, self.title)}
        return Report(self.out, files, blocks, self.title)


def build_report(result: EvalResult, out: Path, dataset: DatasetInfo) -> Report:
    """Write metrics.json, report.md, report.html and the PNG figures into ``out``.

    Raises:
        DetectError: ``out`` cannot be written.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFolderError(f"cannot create the output folder {out} ({exc.strerror}); pass "
                                f"--out to a folder you can write") from None
    files: dict[str, Path] = {}
    metrics = out / "metrics.json"
    write_text(metrics, json.dumps(result.to_dict(), indent=1))
    files["metrics"] = metrics
    drawn = _draw(result, out, dataset)
    files.update({name: p for name, (p, _) in drawn.items() if p is not None})
    blocks = report_blocks(result, drawn)
    title = f"detect eval: {result.split}"
    files.update(write_documents(blocks, out, title))
    logger.info("report written to %s", out)
    return Report(out, files, blocks, title)


def write_report(result: EvalResult, out: Path, dataset: DatasetInfo) -> dict[str, Path]:
    """:func:`build_report`'s files by name (metrics, report_md, report_html, figures)."""
    return build_report(result, out, dataset).files


def write_documents(blocks: Sequence[Block], out: Path, title: str) -> dict[str, Path]:
    """report.md and report.html from ``blocks``, by name."""
    write_text(out / "report.md", to_markdown(blocks, out))
    write_text(out / "report.html", to_html(blocks, title=title))
    return {"report_md": out / "report.md", "report_html": out / "report.html"}


def _draw(result: EvalResult, out: Path, dataset: DatasetInfo
          ) -> dict[str, tuple[Path | None, str]]:
    drawn: dict[str, tuple[Path | None, str]] = {
        "pr_curves": (figures.pr_curves(result, out / "pr_curves.png"), ""),
        "froc": (figures.froc_curve(result, out / "froc.png"), ""),
    }
    for source in ("detector", "head"):
        drawn[f"confusion_{source}"] = (
            figures.confusion_matrices(result, source, out / f"confusion_{source}.png"), "")
    for kind in ("false_positives", "missed"):
        drawn[kind] = figures.gallery(result.gallery.get(kind, []), kind, dataset.root,
                                      out / f"{kind}.png", dataset.recipe)
    return drawn


def _ci(result: EvalResult, key: str) -> tuple[str, str]:
    entry = result.ci.get("metrics", {}).get(key)
    if entry is None:
        return fmt(_point(result, key)), "-"
    low, high = entry["low"], entry["high"]
    if low is None:
        return fmt(entry["value"]), entry.get("note", "-")
    return fmt(entry["value"]), f"{low:.3f} - {high:.3f}"


def _point(result: EvalResult, key: str) -> Any:
    return {"map50_95": result.map50_95}.get(key)


def _leak_blocks(result: EvalResult) -> list[Block]:
    leak = result.leak
    if leak.get("patients"):
        ids = ", ".join(leak["patients"])
        return [("note", f"LEAKAGE: {len(leak['patients'])} patients of this split were in the "
                         f"model's training split ({ids}); evaluated with --allow-leak, so "
                         "these numbers are optimistic and not a fair test.")]
    if not leak.get("checked"):
        return [("p", "Leakage was not checked: no list of the model's training patients "
                      "(predictions without a model.json, or one without dataset.splits).")]
    return [("p", "Leakage checked: no patient of this split was in the training split.")]


def _headline(result: EvalResult) -> list[Block]:
    rows = []
    for key, name in HEADLINE:
        if key.startswith("patient_balanced") and key not in result.ci.get("metrics", {}):
            continue
        rows.append([name, *_ci(result, key)])
    ci = result.ci
    patients = result.counts["patients"]
    method = (f"{ci.get('method')}, {ci.get('replicates')} replicates, seed {ci.get('seed')}, "
              f"{patients} patients" if patients != 1 else
              f"{ONE_PATIENT} (a bootstrap over patients needs at least two)")
    return [
        ("h2", "Headline"),
        ("table", (["metric", "value", "95% CI"], rows)),
        ("p", f"CIs: {method}. conf = {result.settings['conf']}, FROC/hit IoU = "
              f"{result.settings['iou_froc']}."),
    ]


def _per_class(result: EvalResult) -> list[Block]:
    found = result.per_patient["per_letter"]
    patients = result.counts["patients_per_letter"]
    rows = []
    for name, entry in result.detection["per_class"].items():
        rows.append([name, str(entry["patients"]), str(entry["gt_boxes"]),
                     fmt(entry["ap50"]), fmt(entry["ap10"])])
    letter_rows = []
    for letter, count in patients.items():
        hit = found.get(letter, {"found": 0, "patients": 0})
        letter_rows.append([letter, str(count), f"{hit['found']}/{hit['patients']}"])
    return [
        ("h2", "Per class"),
        ("table", (["class", "patients with boxes", "gt boxes", "AP50", "AP@0.1"], rows)),
        ("h3", "Per histology letter (tumour found at conf)"),
        ("table", (["letter", "patients in split", "patients found / with tumour"],
                   letter_rows)),
    ]


def _froc(result: EvalResult) -> list[Block]:
    froc = result.froc
    header = ["FP per scan", *[f"{r:g}" for r in FROC_RATES], "mean"]
    row = ["sensitivity", *[fmt(s) for s in froc["sensitivity"]], fmt(froc["mean"])]
    return [
        ("h2", "FROC"),
        ("table", (header, [row])),
        ("p", f"{froc['lesions']} lesions (gt boxes) in {froc['scans']} scans (series); "
              f"{froc['hits']} hit, {froc['false_positives']} false positives, "
              f"{froc['duplicates']} duplicates (ignored), at IoU >= {froc['iou']}."),
    ]


def _lesions(result: EvalResult) -> list[Block]:
    """Lesion-level FROC beside the slice FROC (same rates)."""
    lesions = result.lesions
    if not lesions:
        return []
    header = ["FP lesions per scan", *[f"{r:g}" for r in FROC_RATES], "mean"]
    row = ["lesion sensitivity", *[fmt(s) for s in lesions["sensitivity"]],
           fmt(lesions["mean"])]
    return [
        ("h2", "Lesions (3D)"),
        ("table", (header, [row])),
        ("p", f"{lesions['lesions']} true lesions (gt boxes linked across slices by "
              f"{lesions['linked_in']}) in {lesions['scans']} scans; "
              f"every record linked, {lesions['predicted_lesions']} predicted lesions: "
              f"{lesions['hits']} hit, {lesions['false_positives']} false positives; a hit "
              f"overlaps a true lesion on a slice at IoU >= {lesions['iou']}; the lesions at "
              f"a threshold are the records above it linked. At conf {lesions['conf']}: "
              f"{lesions['predicted_lesions_at_conf']} lesions, {lesions['found_at_conf']} of "
              f"{lesions['lesions']} lesions found (sensitivity "
              f"{fmt(lesions['sensitivity_at_conf'])}), "
              f"{lesions['false_positives_at_conf']} false-positive lesions."),
    ]


def _histology(result: EvalResult) -> list[Block]:
    blocks: list[Block] = [("h2", "Histology")]
    names = {"detector": "detector letters (label)", "head": "histology head (probabilities)"}
    patients = result.counts["patients_per_letter"]
    for source, title in names.items():
        section = result.histology.get(source, {})
        blocks.append(("h3", title))
        if not section.get("available"):
            blocks.append(("p", f"not available: {section.get('reason', 'n/a')}"))
            continue
        rows = []
        for level in ("slice", "patient"):
            m = section[level]
            covered = f"{m['covered']['scored']}/{m['covered']['total']}"
            rows.append([level, covered, fmt(m["accuracy"]), fmt(m["balanced_accuracy"]),
                         fmt(m["macro_f1"])])
        blocks.append(("table", (["level", "scored", "accuracy", "balanced accuracy",
                                  "macro-F1"], rows)))
        per_letter = []
        for letter in section["patient"]["per_letter"]:
            auc = section["patient"]["auc"][letter]
            per_letter.append([f"{letter} ({patients.get(letter, 0)} patients)",
                               fmt(section["patient"]["per_letter"][letter]["recall"]),
                               fmt(auc["auc"]) if auc["auc"] is not None else
                               f"n/a ({auc['reason']})"])
        blocks.append(("table", (["letter", "patient recall", "patient AUC (one-vs-rest)"],
                                 per_letter)))
        blocks.append(("img", (f"confusion_{source}", "confusion matrices")))
    return blocks


def report_blocks(result: EvalResult, drawn: dict[str, tuple[Path | None, str]]
                  ) -> list[Block]:
    """The report's content, in order."""
    counts = result.counts
    blocks: list[Block] = [
        ("h1", f"detect eval: {result.split} split"),
        ("p", f"Dataset {result.dataset['path']} (fingerprint "
              f"{result.dataset['fingerprint'][:12]}), classes {', '.join(result.classes)}; "
              f"{counts['images']} slices, {counts['gt_boxes']} gt boxes, "
              f"{counts['patients']} patients, {counts['scans']} scans."),
        *_leak_blocks(result),
        *(("note", f"Warning: {text}") for text in result.warnings),
        ("p", f"Predictions: {counts['predictions']} read, {counts['predictions_in_split']} on "
              f"slices of the split, {counts['predictions_outside_split']} on slices outside "
              f"it (excluded), {counts['predictions_unmapped_label']} with a label that is no "
              "class (class-agnostic metrics only)."),
        *_headline(result), *_per_class(result),
        ("img", ("pr_curves", "PR curves at IoU 0.5")),
        *_froc(result), ("img", ("froc", "FROC curve")),
        *_lesions(result),
        *_histology(result),
        ("h2", "Worst false positives"), ("gallery", "false_positives"),
        ("h2", "Missed tumours"), ("gallery", "missed"),
    ]
    resolved: list[Block] = []
    for kind, value in blocks:
        if kind in ("img", "gallery"):
            name = value if kind == "gallery" else value[0]
            path, note = drawn.get(name, (None, ""))
            if path is not None:
                resolved.append(("img", (path, name.replace("_", " "))))
            if note or path is None:
                resolved.append(("p", note or "nothing to draw"))
        else:
            resolved.append((kind, value))
    return resolved


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
         "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;"
         "padding:3px 8px;text-align:left}.note{background:#fdd;border:2px solid #c00;"
         "padding:0.5em;font-weight:bold}img{max-width:100%}")


def to_html(blocks: Sequence[Block], *, title: str) -> str:
    """Render blocks as one self-contained HTML page (figures embedded)."""
    render: dict[str, Callable[[Any], str]] = {
        "h1": lambda t: f"<h1>{html.escape(t)}</h1>",
        "h2": lambda t: f"<h2>{html.escape(t)}</h2>",
        "h3": lambda t: f"<h3>{html.escape(t)}</h3>",
        "p": lambda t: f"<p>{html.escape(t)}</p>",
        "note": lambda t: f'<p class="note">{html.escape(t)}</p>',
        "table": lambda v: _html_table(*v),
        "img": lambda v: _html_img(*v),
    }
    body = "\n".join(render[kind](value) for kind, value in blocks)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def series_blocks(score: SeriesScore, figure: Path | None, *, title: str, about: str
                  ) -> list[Block]:
    """A report section for predictions scored over whole series
    (:func:`detect.eval.series.score_series`), with its side-by-side figure."""
    found = ", ".join(f"{p} {'found' if hit else 'missed'}"
                      for p, hit in sorted(score.patients_found.items())) or "n/a"
    rows = [
        ["tumour AP50, annotated slices", fmt(score.ap50_annotated)],
        ["AP at IoU 0.1, annotated slices", fmt(score.ap10_annotated)],
        ["AP50, every slice", fmt(score.ap50_all_slices)],
        ["sensitivity at 1 FP per series", fmt(score.sensitivity_at(1.0))],
        ["sensitivity at 8 FP per series", fmt(score.sensitivity_at(8.0))],
        [f"patient found at conf {score.conf:g}", found],
    ]
    counts = score.counts
    blocks: list[Block] = [
        ("h2", title), ("p", about), ("table", (["metric", "value"], rows)),
        ("p", f"{counts['slices']} slices in {counts['series']} series predicted, "
              f"{counts['annotated_slices']} of them annotated ({counts['boxes']} boxes); "
              f"{counts['predictions']} detections, {counts['ignored_near_annotation']} ignored "
              f"on unannotated slices within {score.near_slices} slices of a box they overlap; "
              f"hits at IoU >= {score.iou}."),
    ]
    if figure is not None:
        blocks.append(("img", (figure, "ground truth and predictions side by side")))
        blocks.append(("p", f"Each slice in the lung window, in grey. Boxes: green: the "
                            f"archive's (left); red: detections at or above conf "
                            f"{score.conf:g}, orange: below it, each with its score (right)."))
    return blocks
