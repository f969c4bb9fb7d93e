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

The source is folders and files, or a DICOMweb server (:mod:`detect.predict.dicomweb`,
``--push`` stores the SRs back); either is a stream of chunks of CT series
(:mod:`detect.predict.stream`) and everything after is the same. A run that fails removes
the files it wrote (and the output folder when it created it).

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
from typing import TYPE_CHECKING

from detect.config import check_max_pixels, default_workers
from detect.device import check_device_spec
from detect.errors import ConfigError, DicomError
from detect.histology import short_patient_id
from detect.io.dicom import DEFAULT_MAX_PIXELS, SliceHeader
from detect.models.base import Detections, Detector
from detect.models.detector import load_detector
from detect.predict.histology import HeadOnSlices, load_head
from detect.predict.outputs import remove_written, write_outputs
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
from detect.predict.stream import Chunk, FolderStream, SourceStream
from detect.predict.writers import SliceResult, choose_out, write_overlay, write_voc
from detect.runs import ModelInfo, resolve_weights

if TYPE_CHECKING:
    from detect.predict.dicomweb import DicomwebSelection
    from detect.predict.sr import BuiltSr, SrModel

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
    pixel samples are skipped (``image-too-large``), never decoded. ``dicomweb``: read
    from a DICOMweb server instead of ``sources`` (which is then empty).
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
    dicomweb: DicomwebSelection | None = None

    def __post_init__(self) -> None:
        if self.dicomweb is not None:
            if self.sources:
                raise ConfigError("detect predict reads folders or one DICOMweb URL, not both")
            if self.dicomweb.push and "sr" not in self.save:
                object.__setattr__(self, "save", (*self.save, "sr"))
        elif not self.sources:
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
    pushed: tuple[int, int] | None = None  # --push: SRs stored, SRs already on the server


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


def _jobs(series: Sequence[Series], info: ModelInfo, lung: bool, max_pixels: int
          ) -> Iterator[SliceJob]:
    for one in series:
        yield from slice_jobs(one, info.recipe, lung, max_pixels=max_pixels)


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
    """Runs batches through the detector (and the histology head, if any) and hands each
    slice to the writers."""

    def __init__(self, detector: Detector, info: ModelInfo, config: PredictConfig, out: Path,
                 head: HeadOnSlices | None = None):
        self.detector, self.info, self.config, self.out = detector, info, config, out
        self.head = head
        self.results: list[SliceResult] = []
        self.pixel_errors: list[tuple[str, str]] = []
        self.chunk = Chunk(SourceScan((), (), 0))
        self.written: list[Path] = []
        self.srs: list[BuiltSr] = []
        self.sr_model: SrModel | None = None
        self.series_seen: list[tuple[str, str]] = []

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
            path=self.chunk.label(header.path),
            width=header.columns,
            height=header.rows,
            predictions=predictions,
        )
        self.results.append(result)
        try:
            if result.predictions and "voc" in self.config.save:
                self.written.append(write_voc(self.out, result))
            if result.predictions and "png" in self.config.save and rendered.lung is not None:
                self.written.append(write_overlay(self.out, result, rendered.lung))
        except OSError as exc:
            raise ConfigError(f"cannot write into {self.out} ({exc}); free space or pass "
                              f"another --out") from None


def _rendered(config: PredictConfig, info: ModelInfo, series: Sequence[Series]
              ) -> Prefetch[Rendered]:
    """Every slice rendered in the model's recipe, started at once in the background
    (:class:`Prefetch`) so that reading and decoding overlap loading the model."""
    total = sum(len(s.slices) for s in series)
    workers = auto_workers(config) if total >= 64 else 1
    jobs = _jobs(series, info, "png" in config.save, config.max_pixels)
    return Prefetch(bounded_map(render_job, jobs, workers, 2 * config.batch), 2 * config.batch)


def _run(runner: _Runner, series: Sequence[Series], rendered_stream: Iterator[Rendered],
         progress: Progress | None, total: int = 0) -> None:
    config = runner.config
    before = len(runner.results) + len(runner.pixel_errors)
    total = max(total, before + sum(len(s.slices) for s in series))
    batch = _Batch()
    for done, ((one, header), rendered) in enumerate(
        zip(_tagged(series), rendered_stream), start=before + 1
    ):
        if rendered.error is not None or rendered.image is None:
            runner.pixel_errors.append((runner.chunk.label(header.path),
                                        rendered.error or "no image"))
        else:
            batch.items.append((one, header, rendered))
        if len(batch.items) >= config.batch:
            runner.flush(batch)
        if progress is not None:
            progress(done, total)
    runner.flush(batch)


def predict(config: PredictConfig, progress: Progress | None = None) -> PredictSummary:
    """Predict on every CT slice of the source and write the results (and, with
    ``--push``, store the SRs on the server once everything is written).

    Raises:
        RunFolderError: the weights are not a detect model, or model.json does not fit.
        DicomError: no CT series in the sources.
        DicomwebError: the server cannot be reached, refuses a request or answers
            something unusable (what the run wrote is removed, nothing is pushed).
        ConfigError: options, or an output folder that cannot be written.
    """
    start = time.monotonic()
    info, weights = resolve_weights(config.weights)
    out = choose_out(config.out)
    with _open_source(config) as source:
        created = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create output folder {out} ({exc.strerror}); pass "
                              f"--out to a folder you can write") from None
        written: list[Path] = []  # every file this run writes, listed before it is written
        try:
            runner, chunks = _predict_chunks(config, info, weights, out, source, progress,
                                             written)
            skipped_rows = [*source.skipped, *(s for c in chunks for s in c.scan.skipped)]
            files = write_outputs(out, runner.config.save, runner.results, skipped_rows,
                                  runner.pixel_errors, runner.series_seen, runner.srs,
                                  head=runner.head is not None, written=written)
            log.info("model %s (%s) wrote %s", info.family, info.root, out)
        except BaseException:
            remove_written(out, written, created)
            raise
        pushed = _push(source, runner) if config.dicomweb and config.dicomweb.push else None
    skipped = Counter(s.reason for c in chunks for s in c.scan.skipped)
    skipped.update(s.reason for s in source.skipped)
    skipped.update("pixel-error" for _ in runner.pixel_errors)
    return PredictSummary(
        out=out,
        files=files,
        files_seen=sum(c.scan.files_seen for c in chunks),
        series=len({r.series_instance_uid for r in runner.results}),
        slices=len(runner.results),
        slices_with_findings=sum(1 for r in runner.results if r.predictions),
        detections=sum(len(r.predictions) for r in runner.results),
        skipped=dict(sorted(skipped.items())),
        seconds=time.monotonic() - start,
        pushed=pushed,
    )


def _open_source(config: PredictConfig) -> SourceStream:
    if config.dicomweb is not None:
        from detect.predict.dicomweb import open_dicomweb

        return open_dicomweb(config.dicomweb, max_pixels=config.max_pixels)
    scan = scan_sources(config.sources, workers=config.workers or default_workers(),
                        max_pixels=config.max_pixels)
    if not scan.series:
        raise DicomError(_no_ct_message(scan, config.sources))
    return FolderStream(scan)


def _predict_chunks(config: PredictConfig, info: ModelInfo, weights: Path, out: Path,
                    source: SourceStream, progress: Progress | None, written: list[Path]
                    ) -> tuple[_Runner, list[Chunk]]:
    """The model on every chunk; the SRs of a chunk are built while its files exist. The
    model loads while the first chunk is fetched (a server) or rendered (a folder)."""
    runner: _Runner | None = None
    source.start()
    if source.background:
        runner = _new_runner(config, info, weights, out, written)
    chunks: list[Chunk] = []
    for chunk in source.chunks():
        with _rendered(config, info, chunk.scan.series) as rendered:  # starts as the model loads
            if runner is None:
                runner = _new_runner(config, info, weights, out, written)
            runner.chunk = chunk
            _run(runner, chunk.scan.series, rendered, progress, source.slices_expected)
        if "sr" in config.save:
            runner.srs += _chunk_srs(runner, chunk.scan, info, weights)
        chunks.append(Chunk(SourceScan((), chunk.scan.skipped, chunk.scan.files_seen)))
        runner.series_seen += [(s.uid, s.description) for s in chunk.scan.series]
    if runner is None:
        raise DicomError("the source gave no CT series")
    return runner, chunks


def _new_runner(config: PredictConfig, info: ModelInfo, weights: Path, out: Path,
                written: list[Path]) -> _Runner:
    detector = load_detector(info, weights, config.device)
    head = None
    if config.histology is not None:
        head = HeadOnSlices(load_head(config.histology, config.device), info.recipe)
    runner = _Runner(detector, info, config, out, head)
    runner.written = written
    return runner


def _push(source: SourceStream, runner: _Runner) -> tuple[int, int]:
    from detect.predict.dicomweb import DicomwebStream

    assert isinstance(source, DicomwebStream)
    return source.push([one.dataset for one in runner.srs])


def _chunk_srs(runner: _Runner, scan: SourceScan, info: ModelInfo, weights: Path
               ) -> list[BuiltSr]:
    from detect.predict.sr import SrModel, build_series_srs, model_key

    config = runner.config
    if runner.sr_model is None:
        head = resolve_weights(config.histology)[1] if config.histology else None
        runner.sr_model = SrModel(family=info.family, run=info.root.name, conf=config.conf,
                                  key=model_key(info.family, weights, config.conf, head))
    uids = {s.uid for s in scan.series}
    return build_series_srs(scan.series,
                            [r for r in runner.results if r.series_instance_uid in uids],
                            runner.sr_model)
