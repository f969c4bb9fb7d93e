"""tools/import_graph.py: detect has no import cycle and no import that climbs the layers
(function-level imports included), and the tool really finds both."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def graph_tool():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools/import_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module
    spec.loader.exec_module(module)
    return module


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "detect"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_detect_has_no_cycle_and_no_upward_import(graph_tool, capsys):
    assert graph_tool.main(["--root", str(ROOT / "detect")]) == 0, capsys.readouterr().out
    assert "0 cycles, 0 upward imports, 0 without a layer" in capsys.readouterr().out


def test_a_cycle_through_a_function_level_import_is_found(graph_tool, tmp_path):
    root = _package(tmp_path, {
        "boxes.py": "from detect.recipe import X\n",
        "recipe.py": "def f():\n    from detect import boxes\n    return boxes\nX = 1\n",
    })
    cycles = graph_tool.strongly_connected(graph_tool.build_graph(root))
    assert cycles == [["detect.boxes", "detect.recipe"]]


def test_an_import_that_climbs_a_layer_is_found(graph_tool, tmp_path):
    root = _package(tmp_path, {
        "models/__init__.py": "",
        "models/net.py": "def f():\n    from detect.train.loop import fit\n    return fit\n",
        "train/__init__.py": "",
        "train/loop.py": "def fit():\n    return 1\n",
    })
    graph = graph_tool.build_graph(root)
    assert graph_tool.upward_imports(graph) == [("detect.models.net", "detect.train.loop")]
    assert graph_tool.main(["--root", str(root)]) == 1


def test_a_module_outside_every_layer_is_reported(graph_tool, tmp_path):
    root = _package(tmp_path, {"helpers.py": "X = 1\n"})
    assert graph_tool.unlayered(graph_tool.build_graph(root)) == ["detect.helpers"]
