"""report.md and report.html show data fields (patient IDs, paths) as inert text: no raw
HTML, no Markdown link or image that a viewer would follow, no broken table; report.md is
plain Markdown (backslash escapes, never an HTML entity)."""

from __future__ import annotations

from pathlib import Path

from support.evaluation import Slice, gt_as_predictions, write_dataset

from detect.eval import evaluate_predictions, write_report
from detect.eval.report import to_html, to_markdown

XSS = "<img src=x onerror=alert(1)>"
LINK = "[click](javascript:alert(1))"


def _report(tmp_path: Path) -> tuple[str, str]:
    patient = f"{XSS}A0001"  # still a Lung-PET-CT-Dx ID by its ending
    dataset = write_dataset(tmp_path / XSS / "data", [Slice(patient, "1", [((10, 10, 30, 30),
                                                                           "A")])],
                            train=(patient,))
    result = evaluate_predictions(dataset, "test", gt_as_predictions(dataset),
                                  train_patients=[patient, f"{LINK}B0002"], allow_leak=True,
                                  bootstrap=0)
    files = write_report(result, tmp_path / "eval", dataset)
    return files["report_md"].read_text(), files["report_html"].read_text()


def test_a_patient_id_with_markup_is_inert_in_both_reports(tmp_path):
    markdown, page = _report(tmp_path)
    assert XSS not in page
    assert 0 < markdown.count(XSS) == markdown.count("\\" + XSS)  # escaped the Markdown way
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img src=x" not in page
    assert markdown.count("<") == markdown.count("\\<")  # report.md has no HTML at all
    assert "&lt;" not in markdown and "&amp;" not in markdown and "&gt;" not in markdown


def test_markdown_blocks_escape_html_links_and_table_cells(tmp_path):
    blocks = [
        ("h1", f"title {XSS}"),
        ("p", f"dataset {LINK}\n# not a heading"),
        ("note", f"LEAKAGE: {XSS}"),
        ("table", (["patient", "n"], [[f"{XSS}|x", "1"]])),
    ]
    markdown = to_markdown(blocks, tmp_path)
    assert markdown.count("<") == markdown.count("\\<")
    assert "](" not in markdown.replace("\\](", "")  # no live link
    assert "\n# not a heading" not in markdown
    assert "| \\<img src=x onerror=alert(1)>\\|x | 1 |" in markdown
    assert "&" not in markdown
    page = to_html(blocks, title=XSS)
    assert XSS not in page
