"""``detect train``, ``eval``, ``predict`` and ``export``: models and what they find."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from detect.cli.app import (
    app,
    console,
    epoch_bars,
    number,
    out,
    print_epoch,
    print_table,
    progress_bar,
    user_errors,
)
from detect.models.registry import defaults_text, family_names

_MODEL_HELP = (", ".join(family_names()[:-1]) + f" or {family_names()[-1]} (the histology "
               f"head on detected boxes).")


@app.command("eval")
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

    Example: detect eval --predictions preds.json --data dataset --split test --out eval
    (whole series: detect predict scans --conf 0 --out p; detect eval --series p
    --annotations Annotation)
    """
    from detect.eval import EvalConfig, run_eval

    with user_errors():
        if series is not None or annotations is not None:
            _series_eval(series, annotations, out_dir, conf, iou_froc, near_slices,
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
        ("predictions outside split", result.counts["predictions_outside_split"]),
    ]
    for source, section in result.histology.items():
        if section.get("available"):
            value = section["patient"]["balanced_accuracy"]
            rows.append((f"histology ({source}) patient bal. acc.", number(value)))
    print_table(rows)
    out.print(f"report: {run.files['report_html']}")


def _series_eval(series: Path | None, annotations: Path | None, out_dir: Path | None,
                 conf: float | None, iou: float, near_slices: int, mixed: bool) -> None:
    from detect.errors import ConfigError
    from detect.eval.series_run import SeriesEvalConfig, run_series_eval

    if series is None or annotations is None or mixed:
        raise ConfigError("detect eval --series PREDICT_OUT takes --annotations ROOT, and "
                          "neither --data, --predictions nor --weights")
    run = run_series_eval(SeriesEvalConfig(series, annotations, out_dir, conf, iou,
                                           near_slices))
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


@app.command("train")
def train_command(
    model: Annotated[str, typer.Option("--model", help=_MODEL_HELP)],
    data: Annotated[Path, typer.Option("--data", help="Converted dataset folder.")],
    size: Annotated[
        str | None, typer.Option(help=f"YOLO model size: n, s, m, l or x (default "
                                      f"{defaults_text('size')}).")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help=f"Training epochs (default {defaults_text('epochs')}).")
    ] = None,
    imgsz: Annotated[
        int | None, typer.Option(help="Training size in px (default: the dataset's image size "
                                      "rounded up to 32; histology: its crop size, 64).")
    ] = None,
    batch: Annotated[
        int | None, typer.Option(help=f"Images per batch, all GPUs together (default "
                                      f"{defaults_text('batch')}).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, 0, or 0,1 (DDP on two GPUs).")] = "auto",
    weights: Annotated[
        Path | None,
        typer.Option(help="Initial weights: a local .pt, or a shipped checkpoint by name: "
                          "phantom (weights/demo-yolov8n-phantom) or real "
                          "(weights/real-yolov8n), both yolov8n. Default: from scratch."),
    ] = None,
    project: Annotated[Path, typer.Option(help="Runs go to PROJECT/<model>/<name>.")] = Path(
        "runs"
    ),
    name: Annotated[
        str | None, typer.Option(help="Run name (default train; never overwritten).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the interrupted run --name (or the latest).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    class_weighting: Annotated[
        str | None,
        typer.Option(help=f"Class imbalance: none, loss or sampler (default "
                          f"{defaults_text('class_weighting')}).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Data-loader workers (default: up to the CPUs).")
    ] = None,
    amp: Annotated[
        str | None, typer.Option(help=f"GPU mixed precision: auto, bf16, fp16 or off (default "
                                      f"{defaults_text('amp')}; not for histology).")
    ] = None,
    backbone: Annotated[
        str | None,
        typer.Option(help="fasterrcnn: resnet50_fpn_v2 (for GPUs) or mobilenet_v3_large_fpn "
                          "(about 3x faster, for CPUs); histology: resnet18 or "
                          f"mobilenet_v3_small. Default: {defaults_text('backbone')}."),
    ] = None,
    nbs: Annotated[
        int | None,
        typer.Option(help="YOLO nominal batch: gradients add up over batches until this many "
                          "images, then one optimizer step (ultralytics' nbs, default 64). "
                          "Small datasets learn faster with --nbs equal to --batch."),
    ] = None,
    optimizer: Annotated[
        str | None, typer.Option(help="YOLO optimizer: auto (ultralytics' choice), SGD, Adam, "
                                      "Adamax, AdamW, NAdam, RAdam, RMSprop, MuSGD.")
    ] = None,
    lr0: Annotated[
        float | None,
        typer.Option(help="YOLO initial learning rate (with --optimizer other than auto)."),
    ] = None,
    mosaic: Annotated[
        float | None,
        typer.Option(help="YOLO mosaic augmentation probability, 0-1 (default 1; 0 can "
                          "converge in fewer epochs on small, uniform data)."),
    ] = None,
) -> None:
    """Train a model on a converted dataset; writes PROJECT/<model>/<name>/ with
    weights/best.pt, weights/last.pt, model.json and metrics.csv. Options a family does
    not take are refused; unset ones are the family's defaults.

    Example: detect train --model yolov8 --data dataset --size s --epochs 100
    (or: detect train --model fasterrcnn --data dataset --batch 8 --device 0,1;
    the histology head on tumour crops: detect train --model histology --data dataset)
    """
    with user_errors():
        from detect.train import TrainConfig, scratch_warning, train

        config = TrainConfig(
            model=model, data=data, size=size, epochs=epochs, imgsz=imgsz, batch=batch,
            device=device, weights=weights, project=project, name=name, resume=resume,
            seed=seed, class_weighting=class_weighting, amp=amp, backbone=backbone, nbs=nbs,
            optimizer=optimizer, lr0=lr0, mosaic=mosaic, workers=workers,
        )
        warning = scratch_warning(config)
        if warning:
            console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True,
                          highlight=False)
        try:
            with epoch_bars() as on_batch:
                result = train(config, on_epoch=print_epoch, on_batch=on_batch)
        except KeyboardInterrupt:
            console.print(
                "interrupted: a run that finished an epoch keeps weights/last.pt; continue "
                "with the same command plus --resume (and --name NAME for a run other than "
                "the latest)"
            )
            raise typer.Exit(130) from None
    out.print(f"run: {result.run_dir}")
    print_table(
        [(k, number(v) if isinstance(v, float) else v) for k, v in result.metrics.items()]
    )


@app.command("predict")
def predict_command(
    sources: Annotated[
        list[Path], typer.Argument(metavar="SOURCE...", help="DICOM folders or files.")
    ],
    weights: Annotated[
        Path, typer.Option("--weights", help="Run folder, its model.json, or a .pt inside it.")
    ],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: ./predictions[-N]).")
    ] = None,
    conf: Annotated[
        float | None,
        typer.Option(help="Keep detections with score >= conf (default: the model's operating "
                          "threshold, model.json thresholds.conf; 0 keeps every box, which "
                          "is what scoring with detect eval needs)."),
    ] = None,
    save: Annotated[
        str, typer.Option(help="What to write: json, voc, png, sr (DICOM SR; comma list).")
    ] = "json,voc",
    device: Annotated[str, typer.Option(help="auto, cpu or a GPU index.")] = "auto",
    batch: Annotated[int, typer.Option(help="Slices per model batch.")] = 16,
    workers: Annotated[int | None, typer.Option(help="Processes reading DICOM.")] = None,
    histology: Annotated[
        Path | None,
        typer.Option(help="Histology head run (detect train --model histology): A/B/E/G "
                          "probabilities for every detection."),
    ] = None,
    max_pixels: Annotated[
        int | None,
        typer.Option(help="Largest image decoded, in pixel samples (rows x columns x samples "
                          "x frames; default 4096x4096x3); larger files are skipped."),
    ] = None,
) -> None:
    """Find tumours on every CT slice of DICOM folders; writes predictions.json, VOC XML per
    slice (LabelImg), optional PNG overlays, summary.csv, slices.csv and skipped.csv.

    Example: detect predict scans/ --weights runs/yolov8/train --save json,voc,png
    """
    from detect.predict.run import PredictConfig, parse_save, predict

    with user_errors():
        config = PredictConfig(
            sources=tuple(sources),
            weights=weights,
            out=out_dir,
            conf=conf,
            save=parse_save(save),
            device=device,
            batch=batch,
            histology=histology,
            **({"workers": workers} if workers is not None else {}),
            **({"max_pixels": max_pixels} if max_pixels is not None else {}),
        )
        with progress_bar("predict slices") as update:
            summary = predict(config, progress=update)
    _report_predict(summary)


def _report_predict(summary: Any) -> None:
    out.print(
        f"predicted {summary.slices} slices of {summary.series} CT series in "
        f"{summary.seconds:.1f}s: {summary.detections} detections on "
        f"{summary.slices_with_findings} slices (score >= {summary.conf:g})"
    )
    skipped = sum(summary.skipped.values())
    rows: list[tuple[str, Any]] = [
        ("files looked at", summary.files_seen),
        ("files skipped", skipped),
    ]
    rows += [(f"  skipped {reason}", n) for reason, n in summary.skipped.items()]
    rows += [(name, path) for name, path in summary.files.items()]
    print_table(rows)


@app.command("export")
def export_command(
    weights: Annotated[
        Path, typer.Option("--weights", help="Run folder, its model.json, or a .pt inside it.")
    ],
    fmt: Annotated[str, typer.Option("--format", help="onnx or torchscript.")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: ./export-<format>[-N]).")
    ] = None,
) -> None:
    """Export a trained model to ONNX or TorchScript and check it against PyTorch on phantom
    slices (parity); writes OUT/model.onnx (or model.torchscript) and OUT/model.json.

    Example: detect export --weights runs/yolov8/train --format onnx --out export-onnx
    (then: detect predict scans/ --weights export-onnx/model.onnx)
    """
    from detect.export.run import ExportConfig, export_model

    with user_errors():
        result = export_model(ExportConfig(weights=weights, format=fmt, out=out_dir))
    out.print(f"exported {result.file} in {result.seconds:.1f}s", soft_wrap=True)
    out.print(f"  model.json  {result.model_json}", soft_wrap=True, highlight=False)
    out.print(f"  parity      passed: {result.parity.summary()}", soft_wrap=True,
              highlight=False)
    out.print(f"next: detect predict SCANS --weights {result.file}", soft_wrap=True)
