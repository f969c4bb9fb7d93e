"""The base install (``pip install detect``, no torch, no ultralytics, no OpenCV) runs an
exported model: ``make test`` builds it as ``.venv-base`` (rebuilt when pyproject.toml
changes); these tests run the real sample through it and compare with the full install.
Without ``.venv-base`` they skip, saying how to build it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / ".venv-base" / "bin"
SAMPLE = REPO / "datasets" / "lung-pet-ct-dx" / "sample"
REAL_MODEL = REPO / "weights" / "real-yolov8n"
FULL = Path(sys.executable).parent


def _base() -> Path:
    if not (BASE / "detect").is_file():
        pytest.skip("no base install at .venv-base: make test builds it "
                    "(or: python -m venv .venv-base && .venv-base/bin/pip install -e .)")
    return BASE


def _run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / "detect"), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped real model exported to ONNX by the full install."""
    out = tmp_path_factory.mktemp("export") / "real-onnx"
    done = _run(FULL, "export", "--weights", str(REAL_MODEL), "--format", "onnx", "--out",
                str(out), cwd=out.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / "model.onnx"


def test_the_base_install_has_no_training_stack():
    base = _base()
    probe = ("import importlib.util as u; print(sorted(m for m in ('torch', 'torchvision', "
             "'ultralytics', 'cv2') if u.find_spec(m)))")
    done = subprocess.run([str(base / "python"), "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_base_predicts_the_real_sample_as_the_full_install(exported, tmp_path):
    base = _base()
    sources = str(SAMPLE / "Lung-PET-CT-Dx")
    runs = {}
    for name, bin_dir in (("base", base), ("full", FULL)):
        done = _run(bin_dir, "predict", sources, "--weights", str(exported), "--out",
                    str(tmp_path / name), "--save", "json,voc,png,sr", "--device", "cpu",
                    cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = tmp_path / name
    base_records = json.loads((runs["base"] / "predictions.json").read_text())
    full_records = json.loads((runs["full"] / "predictions.json").read_text())
    assert base_records and base_records == full_records  # the same numpy, the same graph
    for name in ("summary.csv", "slices.csv"):
        assert (runs["base"] / name).read_text() == (runs["full"] / name).read_text()
    for kind in ("voc", "png", "sr"):
        found = {p.relative_to(runs["base"]) for p in (runs["base"] / kind).rglob("*.*")}
        assert found and found == {p.relative_to(runs["full"])
                                   for p in (runs["full"] / kind).rglob("*.*")}


def test_base_converts_and_scores(exported, tmp_path):
    base = _base()
    done = _run(base, "convert", str(SAMPLE / "Lung-PET-CT-Dx"), str(SAMPLE / "Annotation"),
                str(tmp_path / "data"), "--split", "1,0,0", "--workers", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    predicted = _run(base, "predict", str(SAMPLE / "Lung-PET-CT-Dx"), "--weights", str(exported),
                     "--out", str(tmp_path / "p"), "--conf", "0", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    scored = _run(base, "eval", "--predictions", str(tmp_path / "p" / "predictions.json"),
                  "--data", str(tmp_path / "data"), "--split", "train", "--out",
                  str(tmp_path / "e"), "--bootstrap", "10", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert (tmp_path / "e" / "report.html").is_file()


@pytest.mark.parametrize("args", [
    ["train", "--model", "yolov8", "--data", "x"],
    ["export", "--weights", str(REAL_MODEL), "--format", "onnx"],
    ["predict", str(SAMPLE / "Lung-PET-CT-Dx"), "--weights", str(REAL_MODEL)],
    ["synth", "phantom"],
])
def test_what_needs_the_training_stack_says_so_in_one_line(args, tmp_path):
    done = _run(_base(), *args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "needs the training packages: pip install 'detect[train]'" in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_onnx_predict_leaves_torch_out_of_the_process(exported, tmp_path):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from detect.predict.run import PredictConfig, predict\n"
        f"predict(PredictConfig(sources=(Path({str(SAMPLE / 'Lung-PET-CT-Dx')!r}),),\n"
        f"        weights=Path({str(exported)!r}), out=Path({str(tmp_path / 'p')!r}),\n"
        "        save=('json', 'voc', 'png', 'sr'), device='cpu'))\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'ultralytics', 'cv2')\n"
        "             if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
