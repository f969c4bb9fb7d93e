"""``detect synth`` and ``detect convert``: cohorts and datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from detect.cli.app import (
    Command,
    app,
    console,
    out,
    print_table,
    progress_bar,
    user_errors,
)
from detect.dataset import DEFAULT_SPLIT
from detect.io.replacing import OVERWRITE_HELP
from detect.recipe import DEFAULT_CHANNELS
from detect.torch_check import require_training_packages


@app.command(cls=Command)
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
    with user_errors():
        require_training_packages("detect synth", ("cv2",))  # the phantom is drawn with OpenCV
        from detect.synth.cohort import SynthConfig, synthesize

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
    print_table([("DICOM root", summary.dicom_root), ("annotation root", summary.annotation_root)])
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


@app.command(cls=Command)
def convert(
    dicom_root: Annotated[Path, typer.Argument(
        metavar="DICOM_ROOT", help="Folder of DICOM files (any layout).")],
    annotation_root: Annotated[Path, typer.Argument(
        metavar="ANNOTATION_ROOT",
        help="Folder of the boxes: VOC XML (<SOPInstanceUID>.xml, as TCIA's archive), DICOM "
             "SR measurement reports (as IDC publishes them), or both; it may be the DICOM "
             "root itself.")],
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Dataset folder to write.")],
    channels: Annotated[
        str, typer.Option(help="Three windows (names or W/L in HU) or 2.5d[:WINDOW[:STEPmm]].")
    ] = DEFAULT_CHANNELS,
    classes: Annotated[str, typer.Option(
        help="histology (A,B,E,G) or tumor (one class; tumour is accepted too).")] = (
        "histology"
    ),
    split: Annotated[str, typer.Option(help="train,val,test fractions by patient.")] = (
        ",".join(f"{f:g}" for f in DEFAULT_SPLIT)
    ),
    seed: Annotated[int, typer.Option(help="Seed of the patient split.")] = 0,
    negatives: Annotated[int, typer.Option(help="Unannotated slices per patient.")] = 0,
    negatives_from: Annotated[
        str, typer.Option("--negatives-from", help="series: any slice away from the boxes; "
                                                   "lungs: only slices that show the lungs.")
    ] = "series",
    fused: Annotated[str, typer.Option(help="Fused PET/CT screenshots: exclude or include.")] = (
        "exclude"
    ),
    hu_jitter: Annotated[str, typer.Option(
        "--hu-jitter",
        help="HU augmentation: K extra copies of each training image, each with its windows "
             "scaled (width x 1 +- F) and shifted (level +- HU) and Gaussian HU noise (sd up "
             "to HU), drawn from --seed: K or K,width=F,level=HU,noise=HU (defaults 0.2, 50, "
             "60; 0: off).")] = "0",
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: CPUs).")] = None,
    shard: Annotated[str | None, typer.Option(help="Convert shard I/N of the patients.")] = None,
    max_pixels: Annotated[
        int | None,
        typer.Option(help="Largest image decoded, in pixel samples (rows x columns x samples "
                          "x frames; default 4096x4096x3); larger files are skipped."),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help=OVERWRITE_HELP + " Without it, a dataset made with "
                     "other options or from inputs that changed is refused (runs trained on "
                     "it would no longer match); the same command again continues or "
                     "changes nothing."),
    ] = False,
    val_patients: Annotated[
        str | None,
        typer.Option(help="Patients to put in val, comma list of IDs as in dataset.json "
                          "(A0002) or the header's (Lung_Dx-A0002); the others are split by "
                          "--split."),
    ] = None,
    test_patients: Annotated[
        str | None, typer.Option(help="Patients to put in test (comma list, as --val-patients).")
    ] = None,
    folds: Annotated[
        int | None,
        typer.Option(help="Write K datasets OUT/fold-1..K, each testing one group of "
                          "patients (K = the number of patients: leave one out); the images "
                          "are rendered once and shared."),
    ] = None,
) -> None:
    """Convert DICOM slices + PASCAL VOC boxes into PNG datasets in COCO and YOLO form.
    An OUT that holds a dataset another run would change is refused unless --overwrite.

    Example: detect convert Lung-PET-CT-Dx Annotation dataset --negatives 2
    """
    from detect.convert import convert as run_convert
    from detect.convert.augment import HuJitter
    from detect.convert.config import ConvertConfig, Shard, parse_fractions, parse_patients
    from detect.device import default_workers
    from detect.io.dicom_limits import DEFAULT_MAX_PIXELS
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
            negatives_from=negatives_from,
            fused=fused,
            workers=workers if workers is not None else default_workers(),
            shard=Shard.parse(shard) if shard else None,
            max_pixels=max_pixels if max_pixels is not None else DEFAULT_MAX_PIXELS,
            overwrite=overwrite,
            hu_jitter=HuJitter.parse(hu_jitter),
            val_patients=parse_patients(val_patients, "--val-patients") if val_patients
            else (),
            test_patients=parse_patients(test_patients, "--test-patients") if test_patients
            else (),
            folds=folds,
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
    print_table(
        [("images", summary.images), ("boxes", summary.boxes)]
        + [(f"issue {k}", v) for k, v in summary.issue_counts.items()]
    )
    if summary.merged:
        for dataset in summary.datasets:
            _report_dataset(dataset)
    else:
        out.print(
            "shard done; the dataset is written when every shard has finished "
            "(or re-run without --shard)"
        )


def _report_dataset(dataset: Any) -> None:
    """Each split's patients, images and boxes, then a warning per empty split."""
    out.print(f"dataset written: {dataset.out / 'dataset.json'}", soft_wrap=True)
    for split, count in dataset.counts.items():
        who = f"{count['patients']} patients"
        if split == "val" and dataset.val_from_train:
            who = "training images"
        out.print(f"  {split.ljust(5)}  {who}, {count['images']} images, {count['boxes']} "
                  f"boxes", highlight=False)
    for text in dataset.warnings.values():
        console.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True, highlight=False)
