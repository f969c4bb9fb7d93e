"""``detect demo``: the whole chain on a phantom cohort."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from detect.cli.app import (
    Command,
    app,
    console,
    number,
    out,
    print_epoch,
    print_table,
    user_errors,
)
from detect.torch_check import require_training_packages


@app.command(cls=Command)
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for everything the demo makes.")
    ] = (Path("demo_out")),
    patients: Annotated[int, typer.Option(help="Phantom patients.")] = 40,
    epochs: Annotated[int, typer.Option(help="YOLO training epochs.")] = 30,
    hyp: Annotated[str, typer.Option(
        help="YOLO hyperparameters: short (a step per batch, AdamW lr 0.004, no mosaic) or "
             "ultralytics (its defaults; the shipped phantom model, 60 epochs).")] = "short",
    size: Annotated[int, typer.Option(help="Phantom image size, px.")] = 256,
    slices: Annotated[int, typer.Option(help="CT slices per phantom series.")] = 48,
    seed: Annotated[int, typer.Option(help="Seed of everything.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, 0, 0,1")] = "auto",
    real: Annotated[bool, typer.Option(
        help="End with the shipped real model on the repository's real CT sample.")] = True,
    real_sample: Annotated[Path | None, typer.Option(
        help="Real sample folder (default: the clone's datasets/lung-pet-ct-dx/sample).")
    ] = None,
    real_weights: Annotated[Path | None, typer.Option(
        help="Real model run folder (default: the clone's weights/real-yolov8n).")] = None,
) -> None:
    """Run the whole chain on a built-in phantom cohort (synth, convert, train, eval,
    predict), then the shipped real model on a real CT patient it never saw.

    Needs no data, no GPU and no network. Example: detect demo --out demo_out
    """
    with user_errors():
        require_training_packages("detect demo")
        from detect.demo.run import DemoConfig, run_demo

        config = DemoConfig(
            out=out_dir,
            patients=patients,
            slices=slices,
            size=size,
            epochs=epochs,
            hyp=hyp,
            seed=seed,
            device=device,
            real=real,
            real_sample=real_sample,
            real_weights=real_weights,
        )
        summary = run_demo(
            config, stage=lambda text: console.print(f"[bold cyan]{text}[/]"), on_epoch=print_epoch
        )
    out.print("\n[bold]detect demo finished[/] (phantom data and demo models: not for "
              "clinical use)")
    print_table(
        [(k, number(v) if isinstance(v, float) else v) for k, v in summary.metrics.items()]
    )
    print_table([("seconds", ", ".join(f"{k} {v}" for k, v in summary.seconds.items()))])
    out.print(f"look at: {summary.report}")
    out.print(f"         {summary.predictions} (predictions.json, voc/, png/, summary.csv)")
    out.print(f"         {summary.run_dir} (weights, model.json, metrics.csv)")
    if summary.real is not None:
        out.print(f"         {summary.real} (real CT: predictions, metrics.json, "
                  f"side_by_side.png)")
