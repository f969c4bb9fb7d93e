"""``detect eval``: model-agnostic scoring of prediction records (see :mod:`detect.eval.score`)."""

from detect.eval.leak import check_leakage, leak_overlap
from detect.eval.report import write_report
from detect.eval.result import EVAL_FORMAT, EvalResult
from detect.eval.run import EvalConfig, EvalRun, SplitPredictor, run_eval
from detect.eval.score import evaluate_predictions

__all__ = [
    "EVAL_FORMAT",
    "EvalConfig",
    "EvalResult",
    "EvalRun",
    "SplitPredictor",
    "check_leakage",
    "evaluate_predictions",
    "leak_overlap",
    "run_eval",
    "write_report",
]
