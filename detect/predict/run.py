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

The source is folders and files, or a DICOMweb server (:mod:`detect.predict.dicomweb`;
``--push`` stores the SRs back once every output is written); either is a stream of
chunks of CT series (:mod:`detect.predict.stream`) and everything after is the same. A
chunk's files exist until the next chunk is taken, so its SRs (which re-read the source
headers) are built as soon as its series are done.

Each series' boxes then pass its lung field (:mod:`detect.predict.lungs`; boxes outside
it are dropped and counted; ``lung_field=None``, ``--lung-field off``, keeps them all) and
are linked into 3D lesions (:mod:`detect.predict.lesions`: lesions.json, lesions.csv,
the SR's tracking identifiers). Slices are therefore written series by series, once a
series' last slice is in.

The same model on a converted split's PNGs, for ``detect eval --weights``, is
:func:`detect.predict.split.predict_split`.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from detect.device import default_workers
from detect.errors import DicomError
from detect.histology import short_patient_id
from detect.io.dicom import SliceHeader
from detect.io.ledger import Ledger
from detect.io.replacing import remove_if_unused
from detect.io.write_errors import output_errors
from detect.models.base import Detections, Detector
from detect.models.detector import load_detector
from detect.predict.config import (
    PredictConfig,
    PredictSummary,
    Progress,
)
from detect.predict.histology import HeadOnSlices, load_head
from detect.predict.lesions import link_results
from detect.predict.lungs import FieldPlan, PendingSeries, SeriesCollector, apply_field, plan_field
from detect.predict.outdir import MARKER_NAME, choose_out, predict_output
from detect.predict.outputs import Collected, OutputRules, write_outputs
from detect.predict.records import to_predictions
from detect.predict.sources import (
    Prefetch,
    Rendered,
    Series,
    SliceJob,
    SliceRenderer,
    SourceScan,
    bounded_map,
    scan_sources,
    slice_jobs,
)
from detect.predict.stream import Chunk, FolderStream, SourceStream
from detect.predict.writers import SliceResult, write_overlay, write_voc
from detect.runs import ModelInfo, resolve_weights

if TYPE_CHECKING:
    from detect.predict.sr import BuiltSr, SrModel

log = logging.getLogger(__name__)

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
                 head: HeadOnSlices | None = None, ledger: Ledger | None = None):
        self.detector, self.info, self.config, self.out = detector, info, config, out
        #: The operating threshold: --conf, else the model's.
        self.conf = info.conf if config.conf is None else config.conf
        #: The lung field (None: off) and linking rule: the options, else the model's.
        self.lung_rule, self.link_rule = config.rules(info.lung_field, info.link_rule)
        self.head = head
        self.record = None if ledger is None else (lambda rel: ledger.record([rel]))
        self.collected = Collected()
        self.collector = SeriesCollector({})
        self.chunk = Chunk(SourceScan((), (), 0))
        self.slices_done = 0
        self.sr_model: SrModel | None = None

    def start_chunk(self, chunk: Chunk, plans: dict[str, FieldPlan]) -> None:
        """The next chunk's series, with their lung-field plans."""
        self.chunk = chunk
        self.collector.plans.update(plans)
        self.collected.skipped += chunk.scan.skipped
        self.collected.files_seen += chunk.scan.files_seen
        self.collected.descriptions.update((s.uid, s.description) for s in chunk.scan.series)

    def flush(self, batch: _Batch) -> None:
        if not batch.items:
            return
        images = [r.image for _, _, r in batch.items if r.image is not None]  # all have one
        detections = self.detector.predict(images, self.conf)
        for (series, header, rendered), det in zip(batch.items, detections):
            self._write(series, header, rendered, det)
        batch.items.clear()

    def _write(self, series: Series, header: SliceHeader, rendered: Rendered,
               det: Detections) -> None:
        patient = short_patient_id(header.patient_id) or "unknown"
        predictions = to_predictions(
            det, self.info.classes, self.info.class_mode, sop=header.sop_instance_uid,
            series=series.uid, patient=patient, score_threshold=self.conf,
            dicom_patient=header.patient_id,
            model_threshold=self.info.conf if self.info.conf != self.conf else None)
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
            dicom_patient_id=header.patient_id,
            series_number=header.series_number,
        )
        self._finish(self.collector.add(series, result, rendered.air, rendered.lung))

    def failed(self, series: Series, header: SliceHeader, reason: str, error: str) -> None:
        """A slice whose pixels could not be used."""
        self.collected.pixel_errors.append((self.chunk.label(header.path), reason, error))
        self._finish(self.collector.failed(series))

    def _finish(self, entry: PendingSeries | None) -> None:
        if entry is None:
            return
        status = apply_field(entry, self.lung_rule)
        self.collected.lesions.append(link_results(
            entry.series.uid, short_patient_id(entry.series.patient_id) or "unknown",
            entry.plan.geometry, entry.results, self.link_rule, status,
            entry.series.patient_id))
        for result in sorted(entry.results, key=lambda r: r.slice_index):
            self.collected.results.append(result)
            grey = entry.grey.get(result.slice_index)
            if result.predictions and grey is not None:  # grey: with --save voc or png
                if "voc" in self.config.save:
                    write_voc(self.out, result, grey, self.record)
                if "png" in self.config.save:
                    write_overlay(self.out, result, grey, self.record)

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
    rule, _ = config.rules(info.lung_field, info.link_rule)
    air_hu = rule.air_hu if rule is not None else 0.0
    grey = "png" in config.save or "voc" in config.save  # overlays; the image a VOC names
    jobs = _jobs(series, info, grey, config.max_pixels, plans, air_hu)
    render = SliceRenderer(info.recipe)
    return Prefetch(bounded_map(render, jobs, workers, 2 * config.batch), 2 * config.batch)


def _run(runner: _Runner, series: Sequence[Series], rendered_stream: Iterator[Rendered],
         progress: Progress | None, expected: int = 0) -> None:
    """The model on one chunk's slices; every series of it is finished at the end.
    ``expected``: the slices the whole source holds (the progress total; 0 = unknown)."""
    config = runner.config
    total = max(expected, runner.slices_done + sum(len(s.slices) for s in series))
    batch = _Batch()
    for done, ((one, header), rendered) in enumerate(
        zip(_tagged(series), rendered_stream), start=runner.slices_done + 1
    ):
        runner.slices_done = done
        if rendered.error is not None or rendered.image is None:
            runner.failed(one, header, rendered.reason, rendered.error or "no image")
        else:
            batch.items.append((one, header, rendered))
        if len(batch.items) >= config.batch:
            runner.flush(batch)
        if progress is not None:
            progress(done, total)
    runner.flush(batch)
    runner.finish_all()


def predict(config: PredictConfig, progress: Progress | None = None) -> PredictSummary:
    """Predict on every CT slice of the source (folders, or a DICOMweb server) and write
    the results; with ``--push``, store the SRs on the server once everything is written.

    The output folder is owned through :func:`detect.predict.outdir.predict_output`: it
    is taken only after the model loaded, its files always describe one run, and a run
    that fails removes what it wrote (and OUT, when it created it).

    Raises:
        RunFolderError: the weights are not a detect model, or model.json does not fit.
        DicomError: no CT series in the sources.
        DicomwebError: the server cannot be reached, refuses a request or answers
            something unusable (nothing is pushed).
        ConfigError: options.
        OutputFolderError: an output folder that is someone else's, holds a finished run,
            is being written by another predict, or cannot be written (disk full, ...).
    """
    start = time.monotonic()
    info, weights = resolve_weights(config.weights)
    out = choose_out(config.out, config.overwrite)
    with _open_source(config) as source:
        created = not out.exists()
        try:
            with ExitStack() as owned:
                runner = _predict_chunks(config, info, weights, out, source, progress, owned)
                files = write_outputs(out, runner.collected, OutputRules(
                    config.save, runner.conf, runner.head is not None, runner.lung_rule,
                    runner.link_rule), runner.record)
                log.info("model %s (%s) wrote %s", info.family, info.root, out)
        except BaseException:
            if created:  # a refused model or a failed run leaves no folder of bookkeeping
                remove_if_unused(out, MARKER_NAME)
            raise
        pushed = None
        if config.dicomweb is not None and config.dicomweb.push:
            pushed = _push(source, runner)
    collected = runner.collected
    skipped = Counter(s.reason for s in collected.skipped)
    skipped.update(reason for _, reason, _ in collected.pixel_errors)
    return PredictSummary(
        out=out,
        files=files,
        files_seen=collected.files_seen,
        series=len({r.series_instance_uid for r in collected.results}),
        slices=len(collected.results),
        slices_with_findings=sum(1 for r in collected.results if r.predictions),
        detections=sum(len(r.predictions) for r in collected.results),
        skipped=dict(sorted(skipped.items())),
        seconds=time.monotonic() - start,
        conf=runner.conf,
        outside_lung=sum(r.outside_lung for r in collected.results),
        lesions=sum(len(s.lesions) for s in collected.lesions),
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
                    source: SourceStream, progress: Progress | None, owned: ExitStack
                    ) -> _Runner:
    """The model on every chunk of the source. The model loads while the first chunk is
    fetched (a server) or rendered (a folder); OUT is taken (into ``owned``) once it has."""
    lung_rule, _ = config.rules(info.lung_field, info.link_rule)
    runner: _Runner | None = None
    source.start()
    if source.background:
        runner = _new_runner(config, info, weights, out, owned)
    runner_skipped = list(source.skipped)
    for chunk in source.chunks():
        plans = {one.uid: plan_field(one, lung_rule) for one in chunk.scan.series}
        with _rendered(config, info, chunk.scan.series, plans) as rendered:
            if runner is None:  # rendering has started: the model loads meanwhile
                runner = _new_runner(config, info, weights, out, owned)
            runner.start_chunk(chunk, plans)
            _run(runner, chunk.scan.series, rendered, progress, source.slices_expected)
        if "sr" in config.save:
            runner.collected.srs += _chunk_srs(runner, chunk.scan.series, weights)
    if runner is None:
        raise DicomError("the source gave no CT series")
    runner.collected.skipped[:0] = runner_skipped
    return runner


def _new_runner(config: PredictConfig, info: ModelInfo, weights: Path, out: Path,
                owned: ExitStack) -> _Runner:
    detector = load_detector(info, weights, config.device)
    head = None
    if config.histology is not None:
        head = HeadOnSlices(load_head(config.histology, config.device), info.recipe)
    owned.enter_context(output_errors(out))
    ledger = owned.enter_context(predict_output(out, config.overwrite, str(info.root)))
    return _Runner(detector, info, config, out, head, ledger)


def _chunk_srs(runner: _Runner, series: Sequence[Series], weights: Path) -> list[BuiltSr]:
    """The SRs of one chunk's series (built while its source files exist)."""
    from detect.predict.sr import SrModel, build_series_srs, model_key

    if runner.sr_model is None:
        config = runner.config
        head = resolve_weights(config.histology)[1] if config.histology else None
        lung = None if runner.lung_rule is None else runner.lung_rule.to_dict()
        postprocess = json.dumps({"lung_field": lung, "lesions": runner.link_rule.to_dict()},
                                 sort_keys=True)
        runner.sr_model = SrModel(
            family=runner.info.family, run=runner.info.root.name, conf=runner.conf,
            key=model_key(runner.info.family, weights, runner.conf, head, postprocess))
    uids = {s.uid for s in series}
    collected = runner.collected
    return build_series_srs(
        series, [r for r in collected.results if r.series_instance_uid in uids],
        runner.sr_model,
        [s for s in collected.lesions if s.series_instance_uid in uids])


def _push(source: SourceStream, runner: _Runner) -> tuple[int, int]:
    from detect.predict.dicomweb import DicomwebStream

    if not isinstance(source, DicomwebStream):
        raise TypeError(f"--push needs a DICOMweb source, got {type(source).__name__}")
    return source.push([one.dataset for one in runner.collected.srs])

