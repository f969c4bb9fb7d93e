"""eval's report folder under the one rule of output folders: a report is refused in one
line naming it, replaced only with --overwrite (a warning says which), and then only the
files eval wrote are deleted; someone else's folder is never used; a failed run leaves
nothing behind."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from support.evaluation import Slice, gt_as_predictions, write_dataset
from support.hostile import one_line_error, run_cli

from detect.errors import OutputFolderError
from detect.eval import EvalConfig, run_eval
from detect.eval.outdir import MARKER_NAME
from detect.io.ledger import LEDGER_NAME
from detect.predictions import write_predictions

DATE = r"\d{4}-\d\d-\d\d \d\d:\d\d"


@pytest.fixture
def scored(tmp_path):
    """A dataset of two test patients and its ground truth as predictions."""
    dataset = write_dataset(tmp_path / "data", [
        Slice("A0001", "1", [((10.0, 10.0, 30.0, 30.0), "A")]),
        Slice("G0002", "1", [((20.0, 20.0, 40.0, 40.0), "G")])])
    predictions = tmp_path / "predictions.json"
    write_predictions(predictions, gt_as_predictions(dataset))
    return dataset, predictions


def _args(dataset, predictions: Path, out: Path, *extra: str) -> list:
    return ["eval", "--predictions", predictions, "--data", dataset.root, "--out", out,
            "--bootstrap", "0", *extra]


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"}


def test_a_report_is_replaced_only_with_overwrite(scored, tmp_path, caplog):
    dataset, predictions = scored
    out = tmp_path / "eval"
    assert run_cli(*_args(dataset, predictions, out)).exit_code == 0
    (out / "notes.md").write_text("mine")
    before = _files(out)
    line = one_line_error(run_cli(*_args(dataset, predictions, out)))
    assert re.fullmatch(
        rf"error: {re.escape(str(out))} holds the report of {DATE} \(test split of the dataset "
        rf"with fingerprint {dataset.fingerprint[:12]}\); pass --overwrite to replace it, or "
        rf"another --out", line), line
    assert _files(out) == before
    with caplog.at_level(logging.WARNING):
        done = run_cli(*_args(dataset, predictions, out, "--overwrite"))
    assert done.exit_code == 0, done.output
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("replacing")]
    assert len(said) == 1 and re.fullmatch(
        rf"replacing the report of {DATE} \(test split .*\) in {re.escape(str(out))}: its "
        rf"\d+ files deleted", said[0]), said
    assert (out / "notes.md").read_text() == "mine" and (out / "report.md").is_file()


def test_someone_elses_folder_is_refused_even_with_overwrite(scored, tmp_path):
    dataset, predictions = scored
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("mine")
    one_line_error(run_cli(*_args(dataset, predictions, theirs, "--overwrite")),
                   "not written by detect eval", "pass a new or empty folder")
    assert [p.name for p in theirs.iterdir()] == ["thesis.tex"]


def test_a_report_from_before_the_marker_is_known_by_its_metrics(scored, tmp_path):
    dataset, predictions = scored
    out = tmp_path / "eval"
    assert run_cli(*_args(dataset, predictions, out)).exit_code == 0
    (out / MARKER_NAME).unlink()
    (out / LEDGER_NAME).unlink()
    (out / "mine.txt").write_text("mine")
    one_line_error(run_cli(*_args(dataset, predictions, out)), "holds the report of")
    assert run_cli(*_args(dataset, predictions, out, "--overwrite")).exit_code == 0
    assert (out / "mine.txt").read_text() == "mine"


def test_a_failed_report_leaves_no_folder(scored, tmp_path, monkeypatch):
    dataset, predictions = scored
    out = tmp_path / "new" / "eval"

    def broken(*args, **kwargs):
        raise OutputFolderError("disk full (simulated)")

    monkeypatch.setattr("detect.eval.report.figures.froc_curve", broken)
    with pytest.raises(OutputFolderError, match="simulated"):
        run_eval(EvalConfig(data=dataset.root, predictions=predictions, out=out, bootstrap=0))
    assert not out.exists()  # metrics.json was written, then removed with the folder
