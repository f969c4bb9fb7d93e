"""``detect eval``: score detections against a dataset split, or ``detect predict``'s output
over whole CT series (``--series``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from detect.cli.app import Command, app, console, number, out, print_table, user_errors
from detect.io.replacing import OVERWRITE_HELP


@app.command("eval", cls=Command)
def eval_command(
    data: Annotated[Path | None, typer.Option("--data", help="Converted dataset folder.")] = None,
    predictions: Annotated[
        Path | None, typer.Option("--predictions", help="Prediction records (COCO results JSON).")
    ] = None,
    weights: Annotated[
        Path | None, typer.Option("--weights", help="Trained weights (predicts the split first).")
    ] = None,
    split: Annotated[str, typer.Option(help="Split to score: train, val or test.")] = "test",
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Report folder (default: eval-<split> beside the input)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)] = False,
    allow_leak: Annotated[
        bool, typer.Option("--allow-leak", help="Score even if trained-on patients are in split.")
    ] = False,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap replicates for 95% CIs.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    iou_froc: Annotated[float, typer.Option(help="IoU of a lesion hit (FROC, patients).")] = 0.1,
    conf: Annotated[
        float | None,
        typer.Option(help="Operating score threshold (default: the model's, model.json "
                          "thresholds.conf; with --predictions, the one they were cut at)."),
    ] = None,
    device: Annotated[str, typer.Option(help="Device for --weights: auto, cpu, 0.")] = "auto",
    histology: Annotated[
        Path | None,
        typer.Option(help="Histology head run: its A/B/E/G for --weights' detections."),
    ] = None,
    series: Annotated[
        Path | None,
        typer.Option(help="A detect predict output folder: score every slice it read over "
                          "whole CT series against --annotations (instead of --data)."),
    ] = None,
    annotations: Annotated[
        Path | None, typer.Option(help="With --series: the VOC annotation root.")
    ] = None,
    near_slices: Annotated[
        int, typer.Option(help="With --series: detections on unannotated slices this close "
                               "to an overlapping box are ignored (0: strict).")
    ] = 2,
) -> None:
    """Score detections against a dataset split: COCO mAP, AP@0.1, FROC, per-patient
    sensitivity, histology, bootstrap CIs; writes metrics.json, report.md, report.html.
    With --series: detect predict's output over whole CT series (AP, FROC per series,
    patients found); writes series.json, report.md, report.html.
    A report folder that holds a report is refused unless --overwrite.

    Example: detect eval --predictions preds.json --data dataset --split test --out eval
    (whole series: detect predict scans --conf 0 --out p; detect eval --series p
    --annotations Annotation)
    """
    from detect.eval import EvalConfig, run_eval

    with user_errors():
        if series is not None or annotations is not None:
            _series_eval(series, annotations, out_dir, conf, iou_froc, near_slices, overwrite,
                         data is not None or predictions is not None or weights is not None)
            return
        if data is None:
            from detect.errors import ConfigError

            raise ConfigError("detect eval needs --data DATASET (with --predictions or "
                              "--weights), or --series PREDICT_OUT --annotations ROOT")
        config = EvalConfig(
            data=data,
            split=split,
            out=out_dir,
            predictions=predictions,
            weights=weights,
            allow_leak=allow_leak,
            bootstrap=bootstrap,
            seed=seed,
            iou_froc=iou_froc,
            conf=conf,
            device=device,
            histology=histology,
            overwrite=overwrite,
        )
        run = run_eval(config, predict_split=_split_predictor(config.weights))
    result = run.result
    if result.leaked:
        console.print(f"[bold red]LEAKAGE allowed:[/] {len(result.leak['patients'])} patients")
    for text in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True, highlight=False)
    rows: list[tuple[str, Any]] = [
        ("mAP50", number(result.map50)),
        ("mAP50-95", number(result.map50_95)),
        ("AP@0.1", number(result.ap10)),
        ("FROC mean", number(result.froc_mean)),
        (f"patient sensitivity @ {result.settings['conf']:g}",
         number(result.patient_sensitivity)),
        ("lesion FROC mean", number(result.lesions.get("mean"))),
        (f"lesion sensitivity @ {result.settings['conf']:g}",
         number(result.lesions.get("sensitivity_at_conf"))),
        ("predictions outside split", result.counts["predictions_outside_split"]),
    ]
    for source, section in result.histology.items():
        if section.get("available"):
            value = section["patient"]["balanced_accuracy"]
            rows.append((f"histology ({source}) patient bal. acc.", number(value)))
    print_table(rows)
    out.print(f"report: {run.files['report_html']}")


def _series_eval(series: Path | None, annotations: Path | None, out_dir: Path | None,
                 conf: float | None, iou: float, near_slices: int, overwrite: bool,
                 mixed: bool) -> None:
    from detect.errors import ConfigError
    from detect.eval.series_run import SeriesEvalConfig, run_series_eval

    if series is None or annotations is None or mixed:
        raise ConfigError("detect eval --series PREDICT_OUT takes --annotations ROOT, and "
                          "neither --data, --predictions nor --weights")
    run = run_series_eval(SeriesEvalConfig(series, annotations, out_dir, conf, iou,
                                           near_slices, overwrite))
    for text in run.warnings:
        console.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True, highlight=False)
    score = run.score
    found = ", ".join(f"{p} {'found' if hit else 'missed'}"
                      for p, hit in sorted(score.patients_found.items())) or "n/a"
    print_table([
        ("series / slices", f"{score.counts['series']} / {score.counts['slices']}"),
        ("annotated slices / boxes",
         f"{score.counts['annotated_slices']} / {score.counts['boxes']}"),
        ("AP50, annotated slices", number(score.ap50_annotated)),
        ("AP@0.1, annotated slices", number(score.ap10_annotated)),
        ("AP50, every slice", number(score.ap50_all_slices)),
        ("sensitivity @ 1 FP/series", number(score.sensitivity_at(1.0))),
        ("sensitivity @ 8 FP/series", number(score.sensitivity_at(8.0))),
        (f"patients @ conf {score.conf:g}", found),
    ])
    out.print(f"report: {run.files['report_html']}", soft_wrap=True)


def _split_predictor(weights: Path | None) -> Any:
    """``detect.predict.predict_split`` when a model is to be run (it imports torch)."""
    if weights is None:
        return None
    from detect.predict.split import predict_split

    return predict_split
