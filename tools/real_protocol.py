"""The protocol for training and scoring on the three shared real patients.

Used by ``tools/real_folds.py`` (leave one patient out, the operating threshold chosen on
the same-vendor folds), which ``tools/make_demo_weights.py`` (the shipped
``weights/real-yolov8n``) and ``tools/benchmarks/real_loo.py`` run, so both do exactly
the same:

1. stage: the chosen patients of ``../shared/realdata`` (read-only) into one
   Lung-PET-CT-Dx tree (``<work>/Lung-PET-CT-Dx/Lung_Dx-<id>/...`` and
   ``<work>/Annotation/<id>/``), as hard links where the file system allows, else copies
   (real files, so that the convert benchmark can drop their pages from the cache);
2. ``detect convert <work>/Lung-PET-CT-Dx <work>/Annotation DS --classes tumor
   --channels C --split 1,0,0 --negatives K --negatives-from F --hu-jitter J --seed 0``:
   every training patient in train;
3. validation from train: with two patients there is no patient to spare for a val
   split (and the held-out patient must not choose the epoch), so images/val holds every
   4th training image in name order that is not an HU-jittered copy. ``detect convert``
   now does this itself for a val split without a patient (dataset.json
   ``val_from_train``, the same images, and coco/val.json too, so Faster R-CNN trains as
   well); ``val-from-train`` below is kept for datasets converted before (it fills only
   the YOLO folders, listed in ``val-from-train.txt``, and leaves a dataset that has val
   images alone). The model picks best.pt by its fitness on them, i.e. the epoch that fits
   the training slices best; the epoch count is fixed in advance;
4. ``detect train --model yolov8 --size n --data DS --epochs E --imgsz S --batch 16
   --nbs N --optimizer O --lr0 L --seed 0 [--weights PHANTOM.pt]``;
5. score a patient: ``detect predict <its DICOM folder> --conf 0.001`` over every slice of
   every CT series, with the model's post-processing (lung field, lesion linking), scored
   against its VOC XML by :func:`detect.eval.series.score_series` (AP50 on the annotated
   slices, slice and lesion FROC at 1/8 ... 8 false positives per series with IoU 0.1,
   patient found at the operating threshold; a detection on an unannotated slice within 2
   slices of an annotated one that overlaps its box is ignored, every other detection off
   the annotated slices is a false positive).

CLI (for the recorded commands): ``python tools/real_protocol.py stage OUT A0002 B0021``
and ``python tools/real_protocol.py val-from-train DATASET``.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detect.eval.series import PredictedSeries, SeriesScore

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"
PATIENTS = ("A0002", "B0021", "E0003")
PHANTOM_WEIGHTS = REPO / "weights" / "demo-yolov8n-phantom" / "weights" / "best.pt"
VAL_EVERY = 4
VAL_LIST = "val-from-train.txt"


@dataclass(frozen=True)
class Recipe:
    """The knobs of one training on real patients; the defaults are the previous shipped
    model's (2026-12-01) except the optimizer settings, see :data:`PREVIOUS`."""

    epochs: int = 25
    imgsz: int = 384
    negatives: int = 10
    negatives_from: str = "series"
    channels: str = "lung,mediastinum,wide"
    hu_jitter: str = "0"  # detect convert --hu-jitter
    classes: str = "tumor"
    pretrained: Path | None = PHANTOM_WEIGHTS
    batch: int = 16
    nbs: int | None = None  # None: ultralytics' 64 (an optimizer step every 4 batches of 16)
    optimizer: str = "auto"
    lr0: float | None = None
    mosaic: float | None = None
    seed: int = 0

    def describe(self) -> str:
        init = "scratch" if self.pretrained is None else f"phantom ({self.pretrained.name})"
        return (f"{self.classes}, {self.channels}, negatives {self.negatives} from "
                f"{self.negatives_from}, HU jitter {self.hu_jitter}, imgsz {self.imgsz}, "
                f"{self.epochs} epochs, nbs {self.nbs or 64}, optimizer {self.optimizer}, lr0 "
                f"{self.lr0 or 'auto'}, mosaic {self.mosaic if self.mosaic is not None else 1.0} "
                f"(ultralytics closes it for the last 10 epochs), init {init}")

    def dataset_name(self) -> str:
        """A folder name unique to the convert options."""
        channels = self.channels.replace(",", "-").replace(":", "_")
        name = f"dataset-n{self.negatives}-{channels}"
        if self.negatives_from != "series":
            name += f"-from{self.negatives_from}"
        if self.hu_jitter != "0":
            name += "-hu" + self.hu_jitter.replace(",", "_").replace("=", "")
        return name

    def run_name(self, init: str = "phantom") -> str:
        """A run folder name unique to the recipe (``--keep`` never reuses another's)."""
        name = f"{init}-e{self.epochs}-i{self.imgsz}-{self.dataset_name()[len('dataset-'):]}"
        for option in ("nbs", "lr0", "mosaic"):
            value = getattr(self, option)
            name += f"-{option}{value}" if value is not None else ""
        return name


#: The recipe of the weights/real-yolov8n shipped 2026-12-01 to 2026-12-07 (chosen on the
#: leave-one-out folds, tools/benchmarks/RESULTS.md real_loo-i384-nbs16-lr4).
PREVIOUS = Recipe(nbs=16, optimizer="AdamW", lr0=0.004)
#: The recipe of weights/real-yolov8n since 2026-12-07 (issue 20 part 4: 2.5D input,
#: negatives from the lungs, HU jitter). Every choice a priori; about 1.2 times the previous
#: recipe's image passes. Its three folds: tools/benchmarks/RESULTS.md real_loo-shipped and
#: real_loo-shipped-budget (the operating point rule changed between them; its card says
#: why); the shipped checkpoint is its fold A0002.
SHIPPED = Recipe(channels="2.5d:wide", negatives_from="lungs", hu_jitter="1", epochs=15,
                 nbs=16, optimizer="AdamW", lr0=0.004)


def patient_root(realdata: Path, patient: str) -> Path:
    return realdata / f"lung-pet-ct-dx-{patient}"


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK):
            raise
        shutil.copy2(source, target)


def stage(realdata: Path, patients: Sequence[str], out: Path) -> tuple[Path, Path]:
    """One Lung-PET-CT-Dx tree holding ``patients``; returns (DICOM root, annotation root).

    Raises:
        SystemExit: a patient is not in ``realdata``.
    """
    dicom, annotation = out / "Lung-PET-CT-Dx", out / "Annotation"
    for patient in patients:
        root = patient_root(realdata, patient)
        source = root / "Lung-PET-CT-Dx" / f"Lung_Dx-{patient}"
        if not source.is_dir():
            raise SystemExit(f"{source} not found: is {realdata} the shared realdata folder?")
        for src, dst in ((source, dicom / source.name),
                         (root / "Annotation" / patient, annotation / patient)):
            if not dst.is_dir():
                shutil.copytree(src, dst, copy_function=_link_or_copy)
    return dicom, annotation


def val_from_train(dataset: Path, every: int = VAL_EVERY) -> int:
    """Fill images/val and labels/val with every ``every``-th training image (step 3 of the
    module docstring; HU-jittered copies are never chosen); returns how many. A dataset
    that has val images is left alone."""
    train, val = dataset / "images" / "train", dataset / "images" / "val"
    if val.is_dir() and any(val.glob("*.png")):
        return len(list(val.glob("*.png")))
    (dataset / "labels" / "val").mkdir(parents=True, exist_ok=True)
    val.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((dataset / "dataset.json").read_text())
    copies = {c["name"] for c in manifest.get("augmentation", {}).get("copies", [])}
    chosen = sorted(p for p in train.glob("*.png") if p.stem not in copies)[::every]
    for image in chosen:
        _link_or_copy(str(image), str(val / image.name))
        label = dataset / "labels" / "train" / f"{image.stem}.txt"
        if label.is_file():
            _link_or_copy(str(label), str(dataset / "labels" / "val" / label.name))
    (dataset / VAL_LIST).write_text(
        f"# images/val = every {every}th image of images/train (no patient to spare for a "
        f"val split); written by tools/real_protocol.py\n"
        + "".join(f"{image.name}\n" for image in chosen))
    return len(chosen)


def convert_real(dicom: Path, annotation: Path, out: Path, recipe: Recipe,
                 workers: int = 2) -> Path:
    """Step 2 and 3: the dataset folder, with val from train."""
    from detect.convert import convert
    from detect.convert.augment import HuJitter
    from detect.convert.config import ConvertConfig
    from detect.recipe import parse_channels

    convert(ConvertConfig(dicom, annotation, out, recipe=parse_channels(recipe.channels),
                          class_mode=recipe.classes, split=(1.0, 0.0, 0.0), seed=recipe.seed,
                          negatives=recipe.negatives, negatives_from=recipe.negatives_from,
                          hu_jitter=HuJitter.parse(recipe.hu_jitter), workers=workers))
    val_from_train(out)
    return out


def train_real(dataset: Path, recipe: Recipe, project: Path, name: str,
               workers: int = 2) -> Path:
    """Step 4: returns the run folder."""
    from detect.train.run import TrainConfig, train

    result = train(TrainConfig(model="yolov8", data=dataset, size="n", epochs=recipe.epochs,
                               imgsz=recipe.imgsz, batch=recipe.batch, nbs=recipe.nbs,
                               optimizer=recipe.optimizer, lr0=recipe.lr0, mosaic=recipe.mosaic,
                               device="cpu",
                               weights=recipe.pretrained, project=project, name=name,
                               seed=recipe.seed, workers=workers))
    return result.run_dir


def predict_patient(run: Path, realdata: Path, patient: str, out: Path,
                    lung_field: str = "model") -> PredictedSeries:
    """Step 5's prediction: every slice of every CT series of ``patient`` (predictions land
    in ``out``), with the model's post-processing (``lung_field``: model, on or off)."""
    from detect.eval.series import read_predicted_series
    from detect.predict.run import PredictConfig, predict

    root = patient_root(realdata, patient)
    summary = predict(PredictConfig(sources=(root / "Lung-PET-CT-Dx",), weights=run, out=out,
                                    conf=0.001, save=("json",), device="cpu",
                                    lung_field=lung_field))
    return read_predicted_series(summary.files["slices"], summary.files["predictions"],
                                 root / "Annotation")


def score_patient(run: Path, realdata: Path, patient: str, out: Path,
                  near_slices: Sequence[int] = (2, 0), conf: float | None = None,
                  lung_field: str = "model") -> dict[int, SeriesScore]:
    """Step 5 on one patient of ``realdata`` (predictions land in ``out``), scored once per
    near-annotation rule in ``near_slices`` (0 = strict), at ``conf`` (None: the model's)."""
    from detect.runs import read_model_json

    series = predict_patient(run, realdata, patient, out, lung_field)
    conf = read_model_json(run).conf if conf is None else conf
    return {near: series.score(conf=conf, near_slices=near) for near in near_slices}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    staging = sub.add_parser("stage", help="link patients of realdata into one tree")
    staging.add_argument("out", type=Path)
    staging.add_argument("patients", nargs="+", choices=PATIENTS)
    staging.add_argument("--realdata", type=Path, default=REALDATA)
    val = sub.add_parser("val-from-train", help="images/val = every 4th training image")
    val.add_argument("dataset", type=Path)
    val.add_argument("--every", type=int, default=VAL_EVERY)
    args = parser.parse_args(argv)
    if args.command == "stage":
        dicom, annotation = stage(args.realdata, args.patients, args.out)
        print(f"{dicom}\n{annotation}")
    else:
        print(f"{val_from_train(args.dataset, args.every)} val images in {args.dataset}")


if __name__ == "__main__":
    main()
