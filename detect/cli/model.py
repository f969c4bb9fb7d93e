"""``detect train``, ``eval``, ``predict`` and ``export``: models and what they find."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from detect.cli.app import (
    Command,
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
from detect.cli.dicomweb import (
    DICOMWEB_AUTH_FILE,
    DICOMWEB_CA_BUNDLE,
    DICOMWEB_TIMEOUT,
    DicomwebOptions,
    predict_source,
    print_push,
)
from detect.io.replacing import OVERWRITE_HELP
from detect.models.registry import defaults_text, family_names
from detect.torch_check import require_training_packages

_MODEL_HELP = (", ".join(family_names()[:-1]) + f" or {family_names()[-1]} (the histology "
               f"head on detected boxes).")


@app.command("train", cls=Command)
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
        str | None, typer.Option(help="Run name (default train). A run is never replaced: a "
                                      "taken name gets -2, -3... and a warning says so.")
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
    operating_point: Annotated[
        str | None,
        typer.Option(help="How a detector's threshold is chosen on the validation split: "
                          "sensitivity@2fp (default: the lesion FROC point at 2 false-"
                          "positive lesions per series, the lowest threshold within that "
                          "budget), sensitivity@Nfp, or max-f1."),
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
        require_training_packages("detect train")
        from detect.train import TrainConfig, scratch_warning, train

        config = TrainConfig(
            model=model, data=data, size=size, epochs=epochs, imgsz=imgsz, batch=batch,
            device=device, weights=weights, project=project, name=name, resume=resume,
            seed=seed, class_weighting=class_weighting, amp=amp, backbone=backbone, nbs=nbs,
            optimizer=optimizer, lr0=lr0, mosaic=mosaic, workers=workers,
            operating_point=operating_point,
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


@app.command("predict", cls=Command)
def predict_command(
    sources: Annotated[
        list[str], typer.Argument(metavar="SOURCE...",
                                  help="DICOM folders or files, or one DICOMweb URL.")
    ],
    weights: Annotated[
        Path, typer.Option("--weights", help="Run folder, its model.json, or a .pt inside it.")
    ],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: ./predictions[-N]).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)] = False,
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
    lung_field: Annotated[
        str, typer.Option("--lung-field", help="on: drop boxes outside each series' lung "
                                               "field (counted as outside_lung); off: keep "
                                               "all; model: as the model was trained (its "
                                               "model.json postprocess).")
    ] = "model",
    study: Annotated[
        list[str] | None,
        typer.Option(metavar="UID", help="DICOMweb: a StudyInstanceUID (repeatable).")
    ] = None,
    series: Annotated[
        list[str] | None,
        typer.Option(metavar="UID", help="DICOMweb: a SeriesInstanceUID (repeatable).")
    ] = None,
    patient: Annotated[
        list[str] | None,
        typer.Option(metavar="ID", help="DICOMweb: a PatientID (repeatable).")
    ] = None,
    push: Annotated[
        bool, typer.Option("--push", help="DICOMweb: store the SRs in each CT's study "
                                          "(never twice).")
    ] = False,
    auth_file: Annotated[Path | None, DICOMWEB_AUTH_FILE] = None,
    ca_bundle: Annotated[Path | None, DICOMWEB_CA_BUNDLE] = None,
    timeout: Annotated[float, DICOMWEB_TIMEOUT] = 30.0,
) -> None:
    """Find tumours on every CT slice of DICOM folders or of a DICOMweb server; writes
    predictions.json, VOC XML per slice (LabelImg), optional PNG overlays, summary.csv,
    slices.csv, skipped.csv and the 3D lesions (lesions.json, lesions.csv). An output
    folder that holds a finished run is refused unless --overwrite.

    Example: detect predict scans/ --weights runs/yolov8/train --save json,voc,png

    Example: detect predict https://pacs/dicom-web --study 1.2.3 --weights W --push
    (credentials: DETECT_DICOMWEB_USER/PASSWORD or DETECT_DICOMWEB_TOKEN, or --auth-file)
    """
    from detect.predict.config import PredictConfig, parse_save
    from detect.predict.run import predict

    with user_errors():
        paths, selection = predict_source(sources, DicomwebOptions(
            study or [], series or [], patient or [], push, auth_file, ca_bundle, timeout))
        config = PredictConfig(
            sources=paths,
            dicomweb=selection,
            weights=weights,
            out=out_dir,
            conf=conf,
            save=parse_save(save),
            device=device,
            batch=batch,
            histology=histology,
            lung_field=lung_field.strip().lower(),
            overwrite=overwrite,
            **_given(workers=workers, max_pixels=max_pixels),
        )
        with progress_bar("predict slices") as update:
            summary = predict(config, progress=update)
    _report_predict(summary)
    print_push(summary.pushed, selection)


def _given(**options: Any) -> dict[str, Any]:
    """The options the user gave (the rest keep PredictConfig's defaults)."""
    return {name: value for name, value in options.items() if value is not None}


def _report_predict(summary: Any) -> None:
    out.print(
        f"predicted {summary.slices} slices of {summary.series} CT series in "
        f"{summary.seconds:.1f}s: {summary.detections} detections on "
        f"{summary.slices_with_findings} slices (score >= {summary.conf:g}), "
        f"{summary.lesions} lesions; {summary.outside_lung} boxes outside the lung field "
        f"dropped"
    )
    skipped = sum(summary.skipped.values())
    rows: list[tuple[str, Any]] = [
        ("files looked at", summary.files_seen),
        ("files skipped", skipped),
    ]
    rows += [(f"  skipped {reason}", n) for reason, n in summary.skipped.items()]
    rows += [(name, path) for name, path in summary.files.items()]
    print_table(rows)


@app.command("export", cls=Command)
def export_command(
    weights: Annotated[
        Path, typer.Option("--weights", help="Run folder, its model.json, or a .pt inside it.")
    ],
    fmt: Annotated[str, typer.Option("--format", help="onnx or torchscript.")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: ./export-<format>[-N]).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)] = False,
) -> None:
    """Export a trained model to ONNX or TorchScript and check it against PyTorch on phantom
    slices (parity); writes OUT/model.onnx (or model.torchscript) and OUT/model.json. An
    OUT that holds an export is refused unless --overwrite.

    Example: detect export --weights runs/yolov8/train --format onnx --out export-onnx
    (then: detect predict scans/ --weights export-onnx/model.onnx)
    """
    with user_errors():
        require_training_packages("detect export")
        from detect.export.run import ExportConfig, export_model

        result = export_model(ExportConfig(weights=weights, format=fmt, out=out_dir,
                                           overwrite=overwrite))
    out.print(f"exported {result.file} in {result.seconds:.1f}s", soft_wrap=True)
    out.print(f"  model.json  {result.model_json}", soft_wrap=True, highlight=False)
    out.print(f"  parity      passed: {result.parity.summary()}", soft_wrap=True,
              highlight=False)
    out.print(f"next: detect predict SCANS --weights {result.file}", soft_wrap=True)
