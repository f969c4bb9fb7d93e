"""What a reader of detect eval's report sees: galleries in the lung window (grey), under a
legend of the box colours that the text repeats; no interval from a single patient; a
report.md that a Markdown renderer shows as written, whatever the data holds."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
from markdown_it import MarkdownIt
from support.evaluation import Slice, prediction, write_dataset

from detect.dataset import load_dataset
from detect.eval import evaluate_predictions, write_report
from detect.eval.figures import GREEN, RED, TILE, YELLOW
from detect.io.png import encode_png, read_png
from detect.recipe import ChannelRecipe, Window

CHANNELS = (60, 160, 230)  # what each channel of every dataset image holds
ENTITY = re.compile(r"(?<!\\)&(#\d+|#x[0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def _dataset(root: Path, patients: tuple[str, ...], recipe: ChannelRecipe | None = None):
    slices = [Slice(p, "1", [((10.0, 10.0, 30.0, 30.0), "A")]) for p in patients]
    dataset = write_dataset(root, slices)
    for image in dataset.load_coco("test")["images"]:
        path = root / image["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.empty((64, 64, 3), np.uint8)
        pixels[...] = CHANNELS
        path.write_bytes(encode_png(pixels))
    if recipe is not None:
        manifest = json.loads((root / "dataset.json").read_text())
        manifest["recipe"] = recipe.to_dict()
        (root / "dataset.json").write_text(json.dumps(manifest))
    return load_dataset(root)


def _report(dataset, out: Path, *, bootstrap: int = 0, leaked: tuple[str, ...] = ()):
    """A false positive far from the truth on every slice: both galleries have tiles.
    ``leaked``: patients the model was trained on (named by the report's leakage note)."""
    images = dataset.load_coco("test")["images"]
    predictions = [prediction(image, (40.0, 40.0, 60.0, 60.0), 0.9) for image in images]
    result = evaluate_predictions(dataset, "test", predictions, bootstrap=bootstrap, conf=0.5,
                                  train_patients=list(leaked) or None,
                                  allow_leak=bool(leaked))
    return write_report(result, out, dataset)


def _colours(image: np.ndarray) -> set[tuple[int, int, int]]:
    return {tuple(int(v) for v in row) for row in image.reshape(-1, 3)}


def test_galleries_show_the_lung_window_in_grey_under_a_colour_legend(tmp_path):
    dataset = _dataset(tmp_path / "data", ("A0001",))
    files = _report(dataset, tmp_path / "eval")
    markdown = files["report_md"].read_text()
    for kind, colours in (("false_positives", (RED, GREEN)), ("missed", (YELLOW, RED))):
        image = read_png(files[kind])
        legend, tiles = image[:22], image[22:22 + TILE, :TILE]  # the first crop
        assert set(colours) <= _colours(legend)  # a square of each colour in the legend
        values, counts = np.unique(tiles.reshape(-1, 3), axis=0, return_counts=True)
        assert tuple(values[np.argmax(counts)]) == (CHANNELS[0],) * 3  # channel 1, grey
        assert (CHANNELS[1],) * 3 not in _colours(tiles)  # not the other windows
    assert "Grey: the lung window (W 1400, L -700 HU; channel 1 of the dataset's images)" \
        in markdown
    assert "Boxes: red: detection with no true box; green: true box." in markdown
    assert "Boxes: yellow: missed true box; red: detection at or above conf." in markdown


def test_a_25d_gallery_shows_the_slice_itself(tmp_path):
    lung = Window("lung", 1400.0, -700.0)
    recipe = ChannelRecipe("2.5d", (lung,), (-1, 0, 1))
    files = _report(_dataset(tmp_path / "data", ("A0001",), recipe), tmp_path / "eval")
    tiles = read_png(files["false_positives"])[22:22 + TILE, :TILE]
    values, counts = np.unique(tiles.reshape(-1, 3), axis=0, return_counts=True)
    assert tuple(values[np.argmax(counts)]) == (CHANNELS[1],) * 3  # offset 0 is channel 2
    assert "the slice itself in its lung window" in files["report_md"].read_text()


def test_one_patient_gives_no_interval_two_give_one(tmp_path):
    one = _report(_dataset(tmp_path / "one", ("A0001",)), tmp_path / "eval-one", bootstrap=50)
    markdown = one["report_md"].read_text()
    assert re.search(r"\| mAP50 \(COCO\) \| [0-9.]+ \| one patient: no interval \|", markdown)
    assert "CIs: one patient: no interval" in markdown
    ci = json.loads(one["metrics"].read_text())["ci"]["metrics"]
    assert all(entry["low"] is None and entry["note"] == "one patient: no interval"
               for entry in ci.values())
    two = _report(_dataset(tmp_path / "two", ("A0001", "A0002")), tmp_path / "eval-two",
                  bootstrap=50)
    markdown = two["report_md"].read_text()
    assert "no interval" not in markdown and "50 replicates" in markdown
    ci = json.loads(two["metrics"].read_text())["ci"]["metrics"]
    assert ci["froc_mean"]["low"] is not None and "note" not in ci["froc_mean"]


#: A folder name with every kind of markup (no ``/``: it is one path component).
HOSTILE = "<img src=x onerror=alert(1)>&amp;[a](javascript:x) _e_ *s* `c` www.e.org a@b.c ~~d~~"


def test_report_md_renders_data_as_written_and_holds_no_entity(tmp_path):
    dataset = _dataset(tmp_path / HOSTILE, ("A0001",))
    markdown = _report(dataset, tmp_path / "eval", leaked=("A0001",))["report_md"].read_text()
    assert not ENTITY.search(markdown)
    page = MarkdownIt("commonmark").enable("table").enable("strikethrough").render(markdown)
    body = re.sub(r'<img src="[a-z_]+\.png" alt="[^"]*" />', "", page)  # the figures
    for tag in ("<a ", "<b>", "<em>", "<code>", "<img", "<s>", "<h4"):
        assert tag not in body, tag
    assert body.count("<strong>") == 1  # the leakage note's own
    text = re.sub(r"<[^>]+>", "", body)
    shown = html.unescape(text)
    assert f"{HOSTILE} (fingerprint" in shown  # the folder's name, as it is
    assert "detect eval: test split" in shown
