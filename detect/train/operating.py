"""After a detector trains: its operating threshold chosen on the validation split
(:mod:`detect.eval.operating`) and written into model.json, with the post-processing
predict applies (the lung field and the lesion linking rule).

model.json then holds ``thresholds.conf`` = the chosen threshold (what predict keeps and
eval judges at, unless ``--conf``), ``operating_point`` = how it was chosen and what it
gave on the validation split, and ``postprocess`` = ``{"lung_field": <rule>, "lesions":
<rule>}`` (:mod:`detect.lung.rule`, :mod:`detect.lesions.rule`).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from detect.dataset import load_dataset
from detect.eval.operating import operating_point
from detect.lesions import LinkRule
from detect.lung import lung_field_rule
from detect.models.family import Family
from detect.models.training import TrainResult
from detect.predict.split import predict_split
from detect.runs import read_model_json, write_model_json

log = logging.getLogger(__name__)


def set_operating_point(result: TrainResult, family: Family, target: str,
                        device: str) -> TrainResult:
    """Choose the run's threshold for ``target`` on its validation split, record it (module
    docstring) and return the result with ``conf`` and the validation lesion figures added
    to its metrics."""
    info = read_model_json(result.run_dir)
    dataset = load_dataset(info.manifest["dataset"]["path"])
    rule = LinkRule()
    predictions = predict_split(result.run_dir, dataset, "val", device)
    point = operating_point(dataset, "val", predictions, target=target, rule=rule,
                            default=float(family.thresholds["conf"]))
    manifest = dict(info.manifest)
    manifest["thresholds"] = {**manifest["thresholds"], "conf": point["conf"]}
    manifest["operating_point"] = point
    manifest["postprocess"] = {"lung_field": lung_field_rule(), "lesions": rule.to_dict()}
    write_model_json(result.run_dir, manifest)
    log.info("operating point %s: conf %.4f (%s)", target, point["conf"],
             point.get("note") or f"val lesion sensitivity {point['sensitivity']:.3f} at "
                                  f"{point['fp_per_scan']:.2f} FP per series")
    shown = {"conf": point["conf"], "val_lesion_sensitivity": point["sensitivity"],
             "val_fp_lesions_per_series": point["fp_per_scan"]}
    return replace(result, metrics={**result.metrics, **shown})
