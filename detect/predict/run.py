"""``detect predict``: DICOM folders → detections → writers (json, voc, png, sr).

Preprocessing comes from the run's model.json only (its channel recipe and image size),
so a model sees new scans exactly as it saw its training data. Slices are decoded and
rendered in worker processes (bounded look-ahead) while the model runs on batches.

Histology probabilities (contract 4 ``histology``): a 4-class histology detector gives
each box the per-class scores of the YOLO head (independent sigmoids) normalised to sum
to 1; a ``tumor`` detector gives none. With ``histology`` (``--histology H``, a run of
``detect train --model histology``) every detection of any detector gets the head's
softmax instead, and summary.csv the head's call (:mod:`detect.predict.histology`).

``--save sr`` writes one DICOM SR (TID 1500) per CT series (:mod:`detect.predict.sr`).

Each series' boxes then pass its lung field (:mod:`detect.predict.lungs`; boxes outside
it are dropped and counted; ``lung_field=None``, ``--lung-field off``, keeps them all) and
are linked into 3D lesions (:mod:`detect.predict.lesions`: lesions.json, lesions.csv,
the SR's tracking identifiers). Slices are therefore written series by series, once a
series' last slice is in.

The same model on a converted split's PNGs, for ``detect eval --weights``, is
:func:`detect.predict.split.predict_split`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from detect.config import check_max_pixels, default_workers
from detect.device import check_device_spec
from detect.errors import ConfigError, DicomError
from detect.histology import short_patient_id
from detect.io.dicom import DEFAULT_MAX_PIXELS, SliceHeader
from detect.lesions import LinkRule
from detect.lung import LungFieldRule
from detect.models.base import Detections, Detector
from detect.models.detector import load_detector
from detect.predict.histology import HeadOnSlices, load_head
from detect.predict.lesions import SeriesLesions, link_results, write_lesions
from detect.predict.lungs import FieldPlan, PendingSeries, SeriesCollector, apply_field, plan_field
from detect.predict.records import to_predictions
from detect.predict.sources import (
    Prefetch,
    Rendered,
    Series,
    SliceJob,
    SourceScan,
    bounded_map,
    render_job,
    scan_sources,
    slice_jobs,
)
from detect.predict.writers import (
    SLICE_COLUMNS,
    SUMMARY_COLUMNS,
    SliceResult,
    choose_out,
    slice_rows,
    summary_rows,
    write_csv,
    write_overlay,
    write_voc,
)
from detect.predictions import write_predictions
from detect.runs import ModelInfo, resolve_weights

log = logging.getLogger(__name__)

SAVE_KINDS = ("json", "voc", "png", "sr")
Progress = Callable[[int, int], None]


def parse_save(text: str) -> tuple[str, ...]:
    """``"json,voc"`` → ("json", "voc").

    Raises:
        ConfigError: an unknown kind.
    """
    kinds = tuple(dict.fromkeys(k.strip().lower() for k in text.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in SAVE_KINDS]
    if unknown or not kinds:
        raise ConfigError(f"--save takes a list of {', '.join(SAVE_KINDS)}, got {text!r}")
    return kinds


@dataclass(frozen=True)
class PredictConfig:
    """Options of ``detect predict`` (see its --help). ``out`` None = ./predictions[-N].

    ``workers`` None = automatic: slices are decoded in this process when the model runs
    on the CPU (torch already uses every core there), in up to 8 worker processes when it
    runs on a GPU (decoding is then the bottleneck). ``max_pixels``: slices declaring more
    pixel samples are skipped (``image-too-large``), never decoded. ``lung_field``: the
    rule boxes must pass (None: ``--lung-field off``); ``lesions``: how boxes are linked.
    """

    sources: tuple[Path, ...]
    weights: Path
    out: Path | None = None
    conf: float = 0.25
    save: tuple[str, ...] = ("json", "voc")
    device: str = "auto"
    batch: int = 16
    workers: int | None = None
    histology: Path | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    lung_field: LungFieldRule | None = field(default_factory=LungFieldRule)
    lesions: LinkRule = field(default_factory=LinkRule)

    def __post_init__(self) -> None:
        if not self.sources:
            raise ConfigError("detect predict needs at least one SOURCE (DICOM folder or file)")
        if not 0.0 <= self.conf <= 1.0:
            raise ConfigError(f"--conf must be in [0, 1], got {self.conf}")
        for kind in self.save:
            if kind not in SAVE_KINDS:
                raise ConfigError(f"--save kinds are {', '.join(SAVE_KINDS)}, got {kind!r}")
        if self.batch < 1 or (self.workers is not None and self.workers < 1):
            raise ConfigError(f"--batch and --workers must be >= 1, got {self.batch}, "
                              f"{self.workers}")
        check_device_spec(self.device)
        check_max_pixels(self.max_pixels)


@dataclass(frozen=True)
class PredictSummary:
    """What a prediction run read, found, skipped and wrote."""

    out: Path
    files: dict[str, Path]
    files_seen: int
    series: int
    slices: int
    slices_with_findings: int
    detections: int
    skipped: dict[str, int]
    seconds: float
    outside_lung: int = 0
    lesions: int = 0


def _no_ct_message(scan: SourceScan, sources: Sequence[Path]) -> str:
    where = ", ".join(str(s) for s in sources)
    if scan.files_seen == 0:
        return f"no files in {where}; pass folders that hold DICOM CT slices"
    counts = Counter(s.reason for s in scan.skipped)
    found = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
    return (
        f"no DICOM CT series in {where} ({scan.files_seen} files: {found}); pass folders "
        f"that hold CT slices"
    )


@dataclass
class _Batch:
    items: list[tuple[Series, SliceHeader, Rendered]] = field(default_factory=list)


def _jobs(series: Sequence[Series], info: ModelInfo, lung: bool, max_pixels: int,
          plans: dict[str, FieldPlan], air_hu: float) -> Iterator[SliceJob]:
    for one in series:
        yield from slice_jobs(one, info.recipe, lung, max_pixels=max_pixels,
                              air_block=plans[one.uid].block, air_hu=air_hu)


def _tagged(series: Sequence[Series]) -> Iterator[tuple[Series, SliceHeader]]:
    for one in series:
        for header in one.slices:
            yield one, header


def auto_workers(config: PredictConfig) -> int:
    """``--workers``, or 1 on the CPU (the model uses every core) and up to 8 processes
    beside a GPU. Decided before torch is imported (so that rendering can start first):
    a GPU is assumed where ``--device`` names one, or is ``auto`` on a machine with an
    NVIDIA driver."""
    if config.workers is not None:
        return config.workers
    spec = config.device.strip().lower()
    gpu = spec not in ("auto", "cpu") or (spec == "auto" and _nvidia_driver())
    return max(1, min(8, default_workers() - 1)) if gpu else 1


def _nvidia_driver() -> bool:
    return Path("/proc/driver/nvidia/version").is_file() or shutil.which("nvidia-smi") is not None


class _Runner:
    """Runs batches through the detector (and the histology head, if any), collects each
    series until its last slice is in, then applies its lung field, links its lesions and
    hands its slices to the writers."""

    def __init__(self, detector: Detector, info: ModelInfo, config: PredictConfig, out: Path,
                 plans: dict[str, FieldPlan], head: HeadOnSlices | None = None):
        self.detector, self.info, self.config, self.out = detector, info, config, out
        self.head = head
        self.results: list[SliceResult] = []
        self.pixel_errors: list[tuple[str, str]] = []
        self.collector = SeriesCollector(plans)
        self.lesions: list[SeriesLesions] = []

    def flush(self, batch: _Batch) -> None:
        if not batch.items:
            return
        images = [r.image for _, _, r in batch.items if r.image is not None]  # all have one
        detections = self.detector.predict(images, self.config.conf)
        for (series, header, rendered), det in zip(batch.items, detections):
            self._write(series, header, rendered, det)
        batch.items.clear()

    def _write(self, series: Series, header: SliceHeader, rendered: Rendered,
               det: Detections) -> None:
        patient = short_patient_id(header.patient_id) or "unknown"
        predictions = to_predictions(
            det, self.info.classes, self.info.class_mode, sop=header.sop_instance_uid,
            series=series.uid, patient=patient,
        )
        if self.head is not None:
            predictions = self.head.attach(series, rendered, predictions)
        result = SliceResult(
            patient_id=patient,
            series_instance_uid=series.uid,
            sop_instance_uid=header.sop_instance_uid,
            slice_index=rendered.index,
            instance_number=header.instance_number,
            path=str(header.path),
            width=header.columns,
            height=header.rows,
            predictions=predictions,
        )
        self._finish(self.collector.add(series, result, rendered.air, rendered.lung))

    def failed(self, series: Series, header: SliceHeader, error: str) -> None:
        """A slice whose pixels could not be decoded."""
        self.pixel_errors.append((str(header.path), error))
        self._finish(self.collector.failed(series))

    def _finish(self, entry: PendingSeries | None) -> None:
        if entry is None:
            return
        status = apply_field(entry, self.config.lung_field)
        self.lesions.append(link_results(
            entry.series.uid, short_patient_id(entry.series.patient_id) or "unknown",
            entry.plan.geometry, entry.results, self.config.lesions, status))
        for result in sorted(entry.results, key=lambda r: r.slice_index):
            self.results.append(result)
            try:
                if result.predictions and "voc" in self.config.save:
                    write_voc(self.out, result)
                grey = entry.grey.get(result.slice_index)
                if result.predictions and "png" in self.config.save and grey is not None:
                    write_overlay(self.out, result, grey)
            except OSError as exc:
                raise ConfigError(f"cannot write into {self.out} ({exc}); free space or pass "
                                  f"another --out") from None

    def finish_all(self) -> None:
        """Whatever series did not complete (none, when every slice came in)."""
        for entry in self.collector.rest():
            self._finish(entry)


def _rendered(config: PredictConfig, info: ModelInfo, series: Sequence[Series],
              plans: dict[str, FieldPlan]) -> Prefetch[Rendered]:
    """Every slice rendered in the model's recipe, started at once in the background
    (:class:`Prefetch`) so that reading and decoding overlap loading the model."""
    total = sum(len(s.slices) for s in series)
    workers = auto_workers(config) if total >= 64 else 1
    air_hu = config.lung_field.air_hu if config.lung_field is not None else 0.0
    jobs = _jobs(series, info, "png" in config.save, config.max_pixels, plans, air_hu)
    return Prefetch(bounded_map(render_job, jobs, workers, 2 * config.batch), 2 * config.batch)


def _run(runner: _Runner, series: Sequence[Series], rendered_stream: Iterator[Rendered],
         progress: Progress | None) -> None:
    config = runner.config
    total = sum(len(s.slices) for s in series)
    batch = _Batch()
    for done, ((one, header), rendered) in enumerate(
        zip(_tagged(series), rendered_stream), start=1
    ):
        if rendered.error is not None or rendered.image is None:
            runner.failed(one, header, rendered.error or "no image")
        else:
            batch.items.append((one, header, rendered))
        if len(batch.items) >= config.batch:
            runner.flush(batch)
        if progress is not None:
            progress(done, total)
    runner.flush(batch)
    runner.finish_all()


def predict(config: PredictConfig, progress: Progress | None = None) -> PredictSummary:
    """Predict on every CT slice under ``config.sources`` and write the results.

    Raises:
        RunFolderError: the weights are not a detect model, or model.json does not fit.
        DicomError: no CT series in the sources.
        ConfigError: options, or an output folder that cannot be written.
    """
    start = time.monotonic()
    info, weights = resolve_weights(config.weights)
    out = choose_out(config.out)
    scan = scan_sources(config.sources, workers=config.workers or default_workers(),
                        max_pixels=config.max_pixels)
    if not scan.series:
        raise DicomError(_no_ct_message(scan, config.sources))
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output folder {out} ({exc.strerror}); pass --out "
                          f"to a folder you can write") from None
    plans = {one.uid: plan_field(one, config.lung_field) for one in scan.series}
    try:
        with _rendered(config, info, scan.series, plans) as rendered:  # starts as the model loads
            detector = load_detector(info, weights, config.device)
            head = None
            if config.histology is not None:
                head = HeadOnSlices(load_head(config.histology, config.device), info.recipe)
            runner = _Runner(detector, info, config, out, plans, head)
            _run(runner, scan.series, rendered, progress)
    except BaseException:
        if created and not any(out.iterdir()):  # a refused model leaves no empty folder
            out.rmdir()
        raise
    files = _write_outputs(out, runner, scan, info)
    skipped = Counter(s.reason for s in scan.skipped)
    skipped.update("pixel-error" for _ in runner.pixel_errors)
    return PredictSummary(
        out=out,
        files=files,
        files_seen=scan.files_seen,
        series=len({r.series_instance_uid for r in runner.results}),
        slices=len(runner.results),
        slices_with_findings=sum(1 for r in runner.results if r.predictions),
        detections=sum(len(r.predictions) for r in runner.results),
        skipped=dict(sorted(skipped.items())),
        seconds=time.monotonic() - start,
        outside_lung=sum(r.outside_lung for r in runner.results),
        lesions=sum(len(s.lesions) for s in runner.lesions),
    )


def _write_outputs(
    out: Path, runner: _Runner, scan: SourceScan, info: ModelInfo
) -> dict[str, Path]:
    files: dict[str, Path] = {}
    predictions = [p for r in runner.results for p in r.predictions]
    if "json" in runner.config.save:
        files["predictions"] = out / "predictions.json"
        write_predictions(files["predictions"], predictions)
    descriptions = {s.uid: s.description for s in scan.series}
    files["summary"] = out / "summary.csv"
    write_csv(files["summary"], SUMMARY_COLUMNS,
              summary_rows(runner.results, descriptions, head=runner.head is not None,
                           lesions={s.series_instance_uid: len(s.lesions)
                                    for s in runner.lesions},
                           lung_field={s.series_instance_uid: s.lung_field
                                       for s in runner.lesions}))
    files["slices"] = out / "slices.csv"
    write_csv(files["slices"], SLICE_COLUMNS, slice_rows(runner.results))
    files["skipped"] = out / "skipped.csv"
    skipped_rows = [{"path": s.path, "reason": s.reason, "detail": s.detail}
                    for s in scan.skipped]
    skipped_rows += [{"path": p, "reason": "pixel-error", "detail": d}
                     for p, d in runner.pixel_errors]
    write_csv(files["skipped"], ("path", "reason", "detail"), skipped_rows)
    lung_rule = runner.config.lung_field
    files.update(write_lesions(out, runner.lesions, runner.config.lesions,
                               None if lung_rule is None else lung_rule.to_dict()))
    if "voc" in runner.config.save:
        files["voc"] = out / "voc"
    if "png" in runner.config.save:
        files["png"] = out / "png"
    if "sr" in runner.config.save:
        files["sr"] = _write_srs(out, runner, scan, info)
    log.info("model %s (%s) wrote %s", info.family, info.root, out)
    return files


def _write_srs(out: Path, runner: _Runner, scan: SourceScan, info: ModelInfo) -> Path:
    from detect.predict.sr import SR_DIR, SrModel, write_series_srs

    model = SrModel(family=info.family, run=info.root.name, conf=runner.config.conf)
    try:
        write_series_srs(out, scan.series, runner.results, model, runner.lesions)
    except OSError as exc:
        raise ConfigError(f"cannot write DICOM SR files into {out} ({exc}); free space or "
                          f"pass another --out") from None
    return out / SR_DIR
