"""Contract 3, the run folder every model family writes and predict, eval and export read::

    runs/<family>/<name>/weights/best.pt, last.pt
    runs/<family>/<name>/model.json    (:mod:`detect.runs.manifest`)
    runs/<family>/<name>/metrics.csv   (:mod:`detect.runs.metrics`)

Choosing and finding run folders: :mod:`detect.runs.folder`; the life of a run folder
(start, resume, complete, clean up): :mod:`detect.runs.lifecycle`.
"""

from detect.runs.folder import choose_run_dir, latest_run, resolve_weights, unique_run_dir
from detect.runs.lifecycle import RunFolder
from detect.runs.manifest import (
    MODEL_FORMAT,
    MODEL_JSON,
    MODEL_VERSION,
    ModelInfo,
    check_fits_dataset,
    config_args,
    new_manifest,
    now_iso,
    read_model_json,
    software_versions,
    validate_model_json,
    write_model_json,
)
from detect.runs.metrics import METRIC_COLUMNS, best_epoch, write_metrics_csv

__all__ = [
    "METRIC_COLUMNS",
    "MODEL_FORMAT",
    "MODEL_JSON",
    "MODEL_VERSION",
    "ModelInfo",
    "RunFolder",
    "best_epoch",
    "check_fits_dataset",
    "choose_run_dir",
    "config_args",
    "latest_run",
    "new_manifest",
    "now_iso",
    "read_model_json",
    "resolve_weights",
    "software_versions",
    "unique_run_dir",
    "validate_model_json",
    "write_metrics_csv",
    "write_model_json",
]
