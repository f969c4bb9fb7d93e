"""The ``detect`` command line: a thin Typer layer over the library.

Each command parses its options into a config, calls one library function, and prints
what it did. Errors from the library (``DetectError``) become one line on stderr and exit
code 1; usage errors are Typer's, exit code 2. Heavy imports (torch, ultralytics) happen
inside the commands that need them, so ``detect --help`` and ``detect convert`` start fast.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from detect import __version__
from detect.errors import DetectError

app = typer.Typer(
    name="detect",
    help="Lung tumour detection and histology on CT / PET-CT DICOM (TCIA Lung-PET-CT-Dx).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console()


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one line and exit 1; Ctrl-C into exit 130."""
    try:
        yield
    except DetectError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("interrupted: finished work is kept; run the same command to resume")
        raise typer.Exit(130) from None


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar driven by ``callback(done, total)``."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _version(value: bool) -> None:
    if value:
        out.print(f"detect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _print_table(rows: list[tuple[str, Any]]) -> None:
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        out.print(f"  {key.ljust(width)}  {value}", highlight=False)


# --- commands are registered below; each calls one library function ---------------------


@app.command()
def synth(
    out_dir: Annotated[
        Path, typer.Argument(metavar="OUT", help="Folder to write the cohort into.")
    ],
    patients: Annotated[int, typer.Option(help="Number of patients.")] = 12,
    slices: Annotated[int, typer.Option(help="CT slices per series.")] = 40,
    size: Annotated[int, typer.Option(help="Image rows = columns, px.")] = 512,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same bytes.")] = 0,
    pet: Annotated[bool, typer.Option("--pet/--no-pet", help="Add a PET series.")] = False,
    fused: Annotated[
        bool, typer.Option("--fused/--no-fused", help="Add fused PET/CT secondary captures.")
    ] = True,
    layout: Annotated[str, typer.Option(help="Folder names: tcia (descriptive) or uid.")] = "tcia",
    compression: Annotated[
        str, typer.Option(help="Transfer syntaxes: none, mixed, rle or j2k.")
    ] = "mixed",
    storage: Annotated[str, typer.Option(help="Pixel storage: mixed, unsigned or signed.")] = (
        "mixed"
    ),
    letter_mix: Annotated[
        str | None,
        typer.Option(help="Letter weights, e.g. A=251,B=38,E=5,G=61 (the real collection)."),
    ] = None,
) -> None:
    """Write a phantom cohort in the exact layout of the TCIA Lung-PET-CT-Dx download.

    Example: detect synth phantom --patients 12 --slices 40
    """
    from detect.synth.cohort import SynthConfig, synthesize

    with user_errors():
        config = SynthConfig(
            patients=patients,
            slices=slices,
            size=size,
            seed=seed,
            pet=pet,
            fused=fused,
            layout=layout,
            compression=compression,
            storage=storage,
            letter_mix=_parse_mix(letter_mix),
        )
        with progress_bar("synth patients") as update:
            summary = synthesize(out_dir, config, progress=update)
    out.print(f"phantom cohort: {len(summary.patients)} patients")
    _print_table([("DICOM root", summary.dicom_root), ("annotation root", summary.annotation_root)])
    out.print(f"next: detect convert {summary.dicom_root} {summary.annotation_root} DATASET")


def _parse_mix(text: str | None) -> dict[str, int] | None:
    if not text:
        return None
    from detect.errors import ConfigError

    try:
        return {k.strip().upper(): int(v) for k, v in (p.split("=") for p in text.split(","))}
    except ValueError:
        raise ConfigError(
            f"--letter-mix takes LETTER=WEIGHT,... like A=3,G=1, got {text!r}"
        ) from None


@app.command()
def convert(
    dicom_root: Annotated[Path, typer.Argument(help="Folder of DICOM files (any layout).")],
    annotation_root: Annotated[Path, typer.Argument(help="Folder of <SOPInstanceUID>.xml.")],
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Dataset folder to write.")],
    channels: Annotated[
        str, typer.Option(help="Three windows (names or W/L in HU) or 2.5d[:WINDOW].")
    ] = "lung,mediastinum,wide",
    classes: Annotated[str, typer.Option(help="histology (A,B,E,G) or tumor (1 class).")] = (
        "histology"
    ),
    split: Annotated[str, typer.Option(help="train,val,test fractions by patient.")] = (
        "0.7,0.15,0.15"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the patient split.")] = 0,
    negatives: Annotated[int, typer.Option(help="Unannotated slices per patient.")] = 0,
    fused: Annotated[str, typer.Option(help="Fused PET/CT screenshots: exclude or include.")] = (
        "exclude"
    ),
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: CPUs).")] = None,
    shard: Annotated[str | None, typer.Option(help="Convert shard I/N of the patients.")] = None,
) -> None:
    """Convert DICOM slices + PASCAL VOC boxes into PNG datasets in COCO and YOLO form.

    Example: detect convert Lung-PET-CT-Dx Annotation dataset --negatives 2
    """
    from detect.config import ConvertConfig, Shard, default_workers, parse_fractions
    from detect.convert import convert as run_convert
    from detect.recipe import parse_channels

    with user_errors():
        config = ConvertConfig(
            dicom_root=dicom_root,
            annotation_root=annotation_root,
            out=out_dir,
            recipe=parse_channels(channels),
            class_mode=classes,
            split=parse_fractions(split),
            seed=seed,
            negatives=negatives,
            fused=fused,
            workers=workers if workers is not None else default_workers(),
            shard=Shard.parse(shard) if shard else None,
        )
        with progress_bar("convert") as update:
            summary = run_convert(config, progress=lambda stage, d, t: update(d, t))
    _report_convert(summary)


def _report_convert(summary: Any) -> None:
    timing = ", ".join(f"{k} {v:.1f}s" for k, v in summary.seconds.items())
    out.print(
        f"converted {summary.patients_converted} patients "
        f"({summary.patients_reused} already done) in {timing}"
    )
    _print_table(
        [("images", summary.images), ("boxes", summary.boxes)]
        + [(f"issue {k}", v) for k, v in summary.issue_counts.items()]
    )
    if summary.merged:
        out.print(f"dataset written: {summary.out / 'dataset.json'}")
    else:
        out.print(
            "shard done; the dataset is written when every shard has finished "
            "(or re-run without --shard)"
        )


@app.command("eval")
def eval_command(
    data: Annotated[Path, typer.Option("--data", help="Converted dataset folder.")],
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
    conf: Annotated[float, typer.Option(help="Operating score threshold.")] = 0.25,
    device: Annotated[str, typer.Option(help="Device for --weights: auto, cpu, 0.")] = "auto",
    histology: Annotated[
        Path | None,
        typer.Option(help="Histology head run: its A/B/E/G for --weights' detections."),
    ] = None,
) -> None:
    """Score detections against a dataset split: COCO mAP, AP@0.1, FROC, per-patient
    sensitivity, histology, bootstrap CIs; writes metrics.json, report.md, report.html.

    Example: detect eval --predictions preds.json --data dataset --split test --out eval
    """
    from detect.eval.evaluate import EvalConfig, run_eval

    with user_errors():
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
        run = run_eval(config)
    result = run.result
    if result.leaked:
        console.print(f"[bold red]LEAKAGE allowed:[/] {len(result.leak['patients'])} patients")
    rows: list[tuple[str, Any]] = [
        ("mAP50", _number(result.map50)),
        ("mAP50-95", _number(result.map50_95)),
        ("AP@0.1", _number(result.ap10)),
        ("FROC mean", _number(result.froc_mean)),
        (f"patient sensitivity @ {config.conf}", _number(result.patient_sensitivity)),
        ("predictions outside split", result.counts["predictions_outside_split"]),
    ]
    for source, section in result.histology.items():
        if section.get("available"):
            value = section["patient"]["balanced_accuracy"]
            rows.append((f"histology ({source}) patient bal. acc.", _number(value)))
    _print_table(rows)
    out.print(f"report: {run.files['report_html']}")


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@app.command("train")
def train_command(
    model: Annotated[
        str, typer.Option("--model", help="yolov8, yolo11, fasterrcnn or histology (head).")
    ],
    data: Annotated[Path, typer.Option("--data", help="Converted dataset folder.")],
    size: Annotated[str, typer.Option(help="Model size: n, s, m, l or x.")] = "n",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 100,
    imgsz: Annotated[
        int | None, typer.Option(help="Training size in px (default: the dataset's image size).")
    ] = None,
    batch: Annotated[int, typer.Option(help="Images per batch (all GPUs together).")] = 16,
    device: Annotated[str, typer.Option(help="auto, cpu, 0, or 0,1 (DDP on two GPUs).")] = "auto",
    weights: Annotated[
        Path | None, typer.Option(help="Local .pt to fine-tune (default: train from scratch).")
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
        str,
        typer.Option(help="Class imbalance: none, loss, sampler; auto = none (loss: histology)."),
    ] = "auto",
    workers: Annotated[int | None, typer.Option(help="Data-loader workers.")] = None,
    amp: Annotated[str, typer.Option(help="GPU mixed precision: auto, bf16, fp16, off.")] = "auto",
    backbone: Annotated[
        str | None,
        typer.Option(help="fasterrcnn: resnet50_fpn_v2 (default, for GPUs), "
                          "mobilenet_v3_large_fpn (about 3x faster, for CPUs); "
                          "histology: resnet18 (default), mobilenet_v3_small."),
    ] = None,
) -> None:
    """Train a detector on a converted dataset; writes PROJECT/<model>/<name>/ with
    weights/best.pt, weights/last.pt, model.json and metrics.csv.

    Example: detect train --model yolov8 --data dataset --size s --epochs 100
    (or: detect train --model fasterrcnn --data dataset --batch 8 --device 0,1;
    the histology head on tumour crops: detect train --model histology --data dataset)
    """
    from detect.train.dispatch import TrainConfig, train

    with user_errors():
        config = TrainConfig(
            model=model,
            data=data,
            size=size,
            epochs=epochs,
            imgsz=imgsz,
            batch=batch,
            device=device,
            weights=weights,
            project=project,
            name=name,
            resume=resume,
            seed=seed,
            class_weighting=class_weighting,
            amp=amp,
            backbone=backbone,
            **({"workers": workers} if workers is not None else {}),
        )
        try:
            result = train(config, on_epoch=_print_epoch)
        except KeyboardInterrupt:
            console.print(
                "interrupted: weights/last.pt is kept; continue with the same command plus "
                "--resume (and --name NAME for a run other than the latest)"
            )
            raise typer.Exit(130) from None
    out.print(f"run: {result.run_dir}")
    _print_table(
        [(k, _number(v) if isinstance(v, float) else v) for k, v in result.metrics.items()]
    )


def _print_epoch(epoch: int, epochs: int, row: Any) -> None:
    if "val_patient_balanced_accuracy" in row:  # the histology head
        out.print(f"epoch {epoch}/{epochs}: val patient balanced accuracy "
                  f"{_number(row.get('val_patient_balanced_accuracy'))}", highlight=False)
        return
    out.print(
        f"epoch {epoch}/{epochs}: mAP50 {_number(row.get('mAP50'))}, "
        f"mAP50-95 {_number(row.get('mAP50-95'))}",
        highlight=False,
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
    conf: Annotated[float, typer.Option(help="Keep detections with score >= conf.")] = 0.25,
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
        )
        with progress_bar("predict slices") as update:
            summary = predict(config, progress=update)
    _report_predict(summary)


def _report_predict(summary: Any) -> None:
    out.print(
        f"predicted {summary.slices} slices of {summary.series} CT series in "
        f"{summary.seconds:.1f}s: {summary.detections} detections on "
        f"{summary.slices_with_findings} slices"
    )
    skipped = sum(summary.skipped.values())
    rows: list[tuple[str, Any]] = [
        ("files looked at", summary.files_seen),
        ("files skipped", skipped),
    ]
    rows += [(f"  skipped {reason}", n) for reason, n in summary.skipped.items()]
    rows += [(name, path) for name, path in summary.files.items()]
    _print_table(rows)


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


@app.command()
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for everything the demo makes.")
    ] = (Path("demo_out")),
    patients: Annotated[int, typer.Option(help="Phantom patients.")] = 40,
    epochs: Annotated[int, typer.Option(help="YOLO training epochs.")] = 60,
    size: Annotated[int, typer.Option(help="Phantom image size, px.")] = 256,
    slices: Annotated[int, typer.Option(help="CT slices per phantom series.")] = 48,
    seed: Annotated[int, typer.Option(help="Seed of everything.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, 0, 0,1")] = "auto",
) -> None:
    """Run the whole chain on a built-in phantom cohort: synth, convert, train, eval, predict.

    Needs no data, no GPU and no network. Example: detect demo --out demo_out
    """
    from detect.demo import DemoConfig, run_demo

    with user_errors():
        config = DemoConfig(
            out=out_dir,
            patients=patients,
            slices=slices,
            size=size,
            epochs=epochs,
            seed=seed,
            device=device,
        )
        summary = run_demo(
            config, stage=lambda text: console.print(f"[bold cyan]{text}[/]"), on_epoch=_print_epoch
        )
    out.print("\n[bold]detect demo finished[/] (phantom data: not for clinical use)")
    _print_table(
        [(k, _number(v) if isinstance(v, float) else v) for k, v in summary.metrics.items()]
    )
    _print_table([("seconds", ", ".join(f"{k} {v}" for k, v in summary.seconds.items()))])
    out.print(f"look at: {summary.report}")
    out.print(f"         {summary.predictions} (predictions.json, voc/, png/, summary.csv)")
    out.print(f"         {summary.run_dir} (weights, model.json, metrics.csv)")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    app(args=argv if argv is not None else sys.argv[1:], prog_name="detect")


if __name__ == "__main__":
    main()
