"""Benchmark Faster R-CNN training on a phantom cohort, side by side with yolov8n on the
same dataset and epochs: test-split accuracy and speed, with the balanced sampler off and on.

The cohort is the YOLO benchmark's (tools/benchmarks/train_yolo.py: phantom with the real
collection's histology mix, no fused screenshots, seed 0, converted with 2 negative slices
per patient). For each ``--class-weighting`` in (none, sampler), ``detect train --model
fasterrcnn`` and (unless ``--yolo-epochs 0``) ``detect train --model yolov8`` run from
scratch with the same seed. The best checkpoint (by val mAP50 for Faster R-CNN, ultralytics'
fitness for YOLO) predicts the test split, scored by ``detect.eval`` (COCO mAP50,
mAP50-95, AP@0.1, AP50 per class). Speed is images seen in training / wall seconds of the
whole training (validation included), the same measure for both families.

Prints a table, writes tools/benchmarks/results/train_frcnn_<backbone>.json and appends to
RESULTS.md.

usage (CPU, the recorded run: 44 min on 2 cores):
    python tools/benchmarks/train_frcnn.py --patients 40 --slices 48 --size 256 --epochs 20 \
        --backbone mobilenet_v3_large_fpn --device cpu
full size (on a GPU; not run yet):
    python tools/benchmarks/train_frcnn.py --patients 80 --slices 48 --size 512 --epochs 50 \
        --batch 8 --device 0
smoke test (CPU, about a minute):
    python tools/benchmarks/train_frcnn.py --patients 8 --slices 12 --size 96 --epochs 1 \
        --imgsz 96 --batch 2 --max-steps 2 --backbone mobilenet_v3_large_fpn --device cpu \
        --yolo-epochs 0 --no-record
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from record import arguments, record

HERE = Path(__file__).resolve().parent
MODES = ("none", "sampler")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--patients", type=int, default=80)
    parser.add_argument("--slices", type=int, default=48)
    parser.add_argument("--size", type=int, default=512, help="phantom slice size, px")
    parser.add_argument("--negatives", type=int, default=2, help="unannotated slices/patient")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--imgsz", type=int, default=None, help="default: --size")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--backbone", default="resnet50_fpn_v2")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=None, help="cap steps/epoch (smoke)")
    parser.add_argument("--weighting", default=",".join(MODES),
                        help="class-weighting modes to run, comma-separated")
    parser.add_argument("--yolo-epochs", type=int, default=None,
                        help="yolov8n epochs on the same dataset (default --epochs; 0: skip)")
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep the work folder")
    parser.add_argument("--no-record", action="store_true",
                        help="print only; do not write results/ or RESULTS.md")
    return parser


def make_dataset(args: argparse.Namespace, work: Path) -> Path:
    """Synthesize and convert the cohort once (reused with --keep)."""
    from detect.convert import convert
    from detect.convert.config import ConvertConfig
    from detect.synth.cohort import SynthConfig, synthesize

    dataset = work / "dataset"
    if (dataset / "dataset.json").is_file():
        return dataset
    cohort = synthesize(work / "cohort", SynthConfig(
        patients=args.patients, slices=args.slices, size=args.size, seed=args.seed,
        fused=False))
    convert(ConvertConfig(cohort.dicom_root, cohort.annotation_root, dataset,
                          negatives=args.negatives, seed=args.seed))
    return dataset


def _score(args: argparse.Namespace, dataset_path: Path, weights: Path) -> dict[str, Any]:
    """Test-split detection metrics of a trained run's best weights."""
    from detect.dataset import load_dataset
    from detect.eval import evaluate_predictions
    from detect.predict.split import predict_split

    dataset = load_dataset(dataset_path)
    device = "cpu" if args.device == "cpu" else args.device.split(",")[0]
    predictions = predict_split(weights, dataset, "test", device)
    scored = evaluate_predictions(dataset, "test", predictions, bootstrap=0,
                                  train_patients=dataset.splits["train"])
    return {
        "test_map50": scored.map50, "test_map50_95": scored.map50_95, "test_ap10": scored.ap10,
        "test_ap50_per_class": {
            name: c["ap50"] for name, c in scored.detection["per_class"].items()},
    }


def train_frcnn(args: argparse.Namespace, dataset_path: Path, mode: str, work: Path
                ) -> dict[str, Any]:
    """One Faster R-CNN run, then the test split scored from its best checkpoint."""
    import csv

    from detect.models.faster_rcnn.config import FasterRCNNConfig
    from detect.train import train_config

    config = FasterRCNNConfig(
        data=dataset_path, backbone=args.backbone, epochs=args.epochs, imgsz=args.imgsz,
        batch=args.batch, device=args.device, project=work / "runs", name=mode,
        seed=args.seed, class_weighting=mode, workers=args.workers, max_steps=args.max_steps,
    )
    shutil.rmtree(work / "runs" / "fasterrcnn" / mode, ignore_errors=True)
    trained = train_config(config)
    with open(trained.run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    seen = sum(float(r["images_per_s"]) * float(r["time_s"]) for r in rows)
    return {
        "family": f"fasterrcnn {args.backbone}", "mode": mode, "epochs": args.epochs,
        "best_epoch": trained.metrics.get("epoch"), "val_map50": trained.metrics.get("mAP50"),
        **_score(args, dataset_path, trained.run_dir / "weights" / "best.pt"),
        "images_per_s": seen / trained.seconds, "train_seconds": trained.seconds,
    }


def train_yolo(args: argparse.Namespace, dataset_path: Path, mode: str, work: Path
               ) -> dict[str, Any]:
    """One yolov8n run on the same dataset, scored the same way."""
    from detect.train import TrainConfig, train

    epochs = args.yolo_epochs
    shutil.rmtree(work / "runs" / "yolov8" / mode, ignore_errors=True)
    trained = train(TrainConfig(
        model="yolov8", data=dataset_path, epochs=epochs, imgsz=args.imgsz, batch=16,
        device=args.device, project=work / "runs", name=mode, seed=args.seed,
        class_weighting=mode, workers=args.workers, amp="off"))
    manifest = json.loads(trained.model_json.read_text())
    listed = manifest["args"]["sampling"].get("listed")
    per_epoch = listed or len(list((dataset_path / "images" / "train").glob("*.png")))
    return {
        "family": "yolov8n", "mode": mode, "epochs": epochs,
        "best_epoch": trained.metrics.get("epoch"), "val_map50": trained.metrics.get("mAP50"),
        **_score(args, dataset_path, trained.run_dir / "weights" / "best.pt"),
        "images_per_s": per_epoch * epochs / trained.seconds, "train_seconds": trained.seconds,
    }


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def report(args: argparse.Namespace, dataset_path: Path, runs: list[dict[str, Any]]) -> str:
    counts = json.loads((dataset_path / "dataset.json").read_text())["counts"]
    letters = sorted(runs[0]["test_ap50_per_class"]) if runs else []
    lines = [
        f"cohort: {args.patients} patients x {args.slices} slices at {args.size} px, "
        f"negatives {args.negatives}; images train/val/test "
        f"{counts['train']['images']}/{counts['val']['images']}/{counts['test']['images']}; "
        f"imgsz {args.imgsz or args.size}, Faster R-CNN batch {args.batch} (yolov8n 16), "
        f"device {args.device}, max steps/epoch {args.max_steps or 'all'}",
        "| model | class weighting | epochs | best epoch | val mAP50 | test mAP50 | "
        "test mAP50-95 | test AP@0.1 | " + " | ".join(f"AP50 {c}" for c in letters)
        + " | train images/s | train s |",
        "|---" * (10 + len(letters)) + "|",
    ]
    for run in runs:
        lines.append(
            f"| {run['family']} | {run['mode']} | {run['epochs']} | {run['best_epoch']} | "
            f"{_num(run['val_map50'])} | "
            f"{_num(run['test_map50'])} | {_num(run['test_map50_95'])} | "
            f"{_num(run['test_ap10'])} | "
            + " | ".join(_num(run["test_ap50_per_class"][c]) for c in letters)
            + f" | {run['images_per_s']:.1f} | {run['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-frcnn-"))
    work.mkdir(parents=True, exist_ok=True)
    dataset = make_dataset(args, work)
    if args.yolo_epochs is None:
        args.yolo_epochs = args.epochs
    modes = args.weighting.split(",")
    runs = [train_frcnn(args, dataset, mode, work) for mode in modes]
    if args.yolo_epochs:
        runs += [train_yolo(args, dataset, mode, work) for mode in modes]
    text = report(args, dataset, runs)
    print(text)
    if not args.no_record:
        record(f"train_frcnn_{args.backbone}", "train_frcnn", text,
               {"args": arguments(args), "runs": runs}, device=args.device)
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
