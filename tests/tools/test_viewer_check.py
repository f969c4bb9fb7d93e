"""tools/viewer_check.py: OHIF shows detect's SR on its slice (slow: Orthanc, OHIF's build
and headless Chromium; skipped, saying what is missing, where any of them is)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location("viewer_check", ROOT / "tools/viewer_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_viewer_config_points_at_this_origin_only() -> None:
    text = _tool().ohif_config("x")
    config = json.loads(text.removeprefix("window.config = ").rstrip().rstrip(";"))
    (source,) = config["dataSources"]
    assert source["configuration"]["qidoRoot"] == source["configuration"]["wadoRoot"] == \
        "/dicom-web"
    assert config["defaultDataSourceName"] == source["sourceName"]


@pytest.mark.slow
def test_ohif_shows_the_sr_box_on_its_slice(tmp_path: Path) -> None:
    tool = _tool()
    if not (tool.DEFAULT_DIST / "index.html").is_file():
        pytest.skip(f"OHIF {tool.OHIF_VERSION}'s dist is not in {tool.DEFAULT_DIST}")
    if shutil.which("Orthanc") is None or shutil.which("chromium") is None:
        pytest.skip("Orthanc or chromium is not installed")
    out = tmp_path / "shot.png"
    assert tool.main(["--out", str(out)]) == 0
    assert tool.viewport_drawn(out.read_bytes())
