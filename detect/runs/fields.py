"""Every model.json field detect reads, checked for type and range (contract 3).

A model.json is a file like any other: it may come from someone else, be edited by hand
or be crafted. :func:`check_fields` checks each field predict, eval, export, train
(``--resume``) and the leakage guard read, and raises one line naming the field, what it
must be and what was found. The fields only one family writes (a YOLO's size, a
backbone, the histology head's crop) are that family's to check
(:meth:`detect.models.family.Family.check_manifest`), when a model is looked up. The
file as text (size, nesting, ``NaN``) is checked by :func:`parse_model_json` before and
while it is parsed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, TypeGuard

from detect.errors import ConfigError, RunFolderError
from detect.io.jsonfile import read_json
from detect.lesions import LinkRule
from detect.lung import LungFieldRule
from detect.recipe import MAX_STEP_MM

MAX_BYTES = 1_000_000  # a real model.json is a few kB (its largest part: the patient split)
MAX_DEPTH = 12  # the deepest part detect writes (args.ultralytics, export.input) is 4
MAX_CLASSES = 100
MAX_NAME = 64  # class, window and patient names
MAX_PATIENTS = 100_000
IMGSZ_RANGE = (32, 4096)
HU_LIMIT = 100_000.0
MAX_OFFSET = 16  # slices either side, for 2.5d recipes
REQUIRED = ("family", "classes", "class_mode", "recipe", "imgsz", "thresholds", "weights")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]+")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(where: Path, field: str, expected: str, value: Any) -> RunFolderError:
    return RunFolderError(f"{where}: {field} must be {expected}, found {_shown(value)}")


def _object(data: Mapping[str, Any], key: str, where: Path, *, required: bool) -> dict | None:
    if key not in data and not required:
        return None
    value = data.get(key)
    if not isinstance(value, dict):
        raise _fail(where, key, "an object", value)
    return value


def _number(value: Any) -> TypeGuard[float]:
    """A finite JSON number (not a bool, not NaN or infinite)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _name(value: Any, limit: int = MAX_NAME) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and bool(
        _PRINTABLE.fullmatch(value))


def _check_model(data: Mapping[str, Any], where: Path) -> None:
    """The family is a name here; its own fields are the family's to check
    (:func:`detect.models.registry.family_of`, before any model is loaded)."""
    if not _name(data.get("family")):
        raise _fail(where, "family", "a model family's name", data.get("family"))
    for key in ("size", "backbone"):
        if data.get(key) is not None and not _name(data.get(key)):
            raise _fail(where, key, "a short name or null", data.get(key))
    if data.get("status", "complete") not in ("training", "complete"):
        raise _fail(where, "status", "'training' or 'complete'", data.get("status"))


def _check_classes(data: Mapping[str, Any], where: Path) -> None:
    classes = data.get("classes")
    if (not isinstance(classes, list) or not 0 < len(classes) <= MAX_CLASSES
            or not all(_name(c) for c in classes) or len(set(classes)) != len(classes)):
        raise _fail(where, "classes", f"1 to {MAX_CLASSES} distinct names of 1 to {MAX_NAME} "
                    f"printable characters", classes)
    if data.get("class_mode") not in ("histology", "tumor"):
        raise _fail(where, "class_mode", "'histology' or 'tumor'", data.get("class_mode"))


def _check_recipe(data: Mapping[str, Any], where: Path) -> None:
    recipe = _object(data, "recipe", where, required=True)
    assert recipe is not None
    windows = recipe.get("windows")
    if not isinstance(windows, list):
        raise _fail(where, "recipe.windows", "a list of windows", windows)
    for k, window in enumerate(windows):
        field = f"recipe.windows[{k}]"
        if not isinstance(window, dict):
            raise _fail(where, field, "an object with name, width_hu, level_hu", window)
        if not _name(window.get("name")):
            raise _fail(where, f"{field}.name", "a short name", window.get("name"))
        width, level = window.get("width_hu"), window.get("level_hu")
        if not _number(width) or not 0.0 < width <= HU_LIMIT:
            raise _fail(where, f"{field}.width_hu", f"a finite number of HU in (0, "
                        f"{HU_LIMIT:g}]", width)
        if not _number(level) or not -HU_LIMIT <= level <= HU_LIMIT:
            raise _fail(where, f"{field}.level_hu", f"a finite number of HU in "
                        f"[{-HU_LIMIT:g}, {HU_LIMIT:g}]", level)
    offsets = recipe.get("slice_offsets")
    if not isinstance(offsets, list) or not all(
            isinstance(o, int) and not isinstance(o, bool) and abs(o) <= MAX_OFFSET
            for o in offsets):
        raise _fail(where, "recipe.slice_offsets", f"a list of integers in [-{MAX_OFFSET}, "
                    f"{MAX_OFFSET}]", offsets)
    step = recipe.get("slice_step_mm")
    if step is not None and (not _number(step) or not 0.0 < step <= MAX_STEP_MM):
        raise _fail(where, "recipe.slice_step_mm", f"a number of mm in (0, {MAX_STEP_MM:g}]",
                    step)


def _check_sizes(data: Mapping[str, Any], where: Path) -> None:
    imgsz = data.get("imgsz")
    low, high = IMGSZ_RANGE
    if (not isinstance(imgsz, int) or isinstance(imgsz, bool) or not low <= imgsz <= high
            or imgsz % 32):
        raise _fail(where, "imgsz", f"a multiple of 32 in [{low}, {high}] px", imgsz)
    thresholds = _object(data, "thresholds", where, required=True)
    assert thresholds is not None
    for key, value in thresholds.items():
        if key not in ("conf", "iou"):
            raise _fail(where, "thresholds", "an object that may hold conf and iou", key)
        if not _number(value) or not 0.0 <= value <= 1.0:
            raise _fail(where, f"thresholds.{key}", "a number in [0, 1]", value)


def _relative_file(value: Any) -> bool:
    if not isinstance(value, str) or not 0 < len(value) <= 255 or "\\" in value:
        return False
    if not _PRINTABLE.fullmatch(value):
        return False
    path = PurePosixPath(value)
    return not path.is_absolute() and ".." not in path.parts and path.name not in ("", ".")


def _check_weights(data: Mapping[str, Any], where: Path) -> None:
    weights = _object(data, "weights", where, required=True)
    assert weights is not None
    for key, value in weights.items():
        if key not in ("best", "last"):
            raise _fail(where, "weights", "an object that may name best and last", key)
        if not _relative_file(value):
            raise _fail(where, f"weights.{key}", "a relative path inside the run folder "
                        "(no '..', no absolute path)", value)
    if "best" not in weights:
        raise _fail(where, "weights.best", "a relative path inside the run folder naming "
                    "the best weights file", None)


def _check_dataset(data: Mapping[str, Any], where: Path) -> None:
    """The dataset a model was trained on: --resume compares its fingerprint, the leakage
    guard reads its train patients."""
    dataset = _object(data, "dataset", where, required=False)
    if dataset is None:
        return
    if "path" in dataset and not isinstance(dataset["path"], str):
        raise _fail(where, "dataset.path", "a string", dataset["path"])
    fingerprint = dataset.get("fingerprint")
    if not isinstance(fingerprint, str) or not _SHA256.fullmatch(fingerprint):
        raise _fail(where, "dataset.fingerprint", "a SHA-256 (64 hex digits)", fingerprint)
    if dataset.get("class_mode", "histology") not in ("histology", "tumor"):
        raise _fail(where, "dataset.class_mode", "'histology' or 'tumor'",
                    dataset.get("class_mode"))
    splits = _object(dataset, "splits", where, required=False) if "splits" in dataset else None
    if "splits" in dataset and splits is None:
        raise _fail(where, "dataset.splits", "an object", dataset["splits"])
    for name, patients in (splits or {}).items():
        if name not in ("train", "val", "test"):
            raise _fail(where, "dataset.splits", "an object that may hold train, val and test",
                        name)
        if not isinstance(patients, list) or len(patients) > MAX_PATIENTS or not all(
                _name(p) for p in patients):
            raise _fail(where, f"dataset.splits.{name}", "a list of patient IDs", patients)


def _check_record(data: Mapping[str, Any], where: Path) -> None:
    """What training recorded: metrics, versions, args (saved options are checked again by
    the training config they are read into)."""
    metrics = data.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, dict):
            raise _fail(where, "metrics", "an object or null", metrics)
        for key, value in metrics.items():
            if value is not None and not _number(value):
                raise _fail(where, f"metrics.{key}", "a finite number or null", value)
    versions = _object(data, "versions", where, required=False) or {}
    for key, value in versions.items():
        if not isinstance(value, str):
            raise _fail(where, f"versions.{key}", "a string", value)
    for key in ("created", "finished"):
        if key in data and not isinstance(data[key], str):
            raise _fail(where, key, "a time (string)", data[key])
    args = _object(data, "args", where, required=False) or {}
    if "sampling" in args:
        sampling = args["sampling"]
        if not isinstance(sampling, dict) or not isinstance(sampling.get("mode"), str):
            raise _fail(where, "args.sampling", "an object with a mode", sampling)
    if "resumed" in args and not (isinstance(args["resumed"], list)
                                  and all(isinstance(t, str) for t in args["resumed"])):
        raise _fail(where, "args.resumed", "a list of times", args["resumed"])


def _check_export(data: Mapping[str, Any], where: Path) -> None:
    record = _object(data, "export", where, required=False)
    if record is None:
        return
    if record.get("format") not in ("onnx", "torchscript"):
        raise _fail(where, "export.format", "'onnx' or 'torchscript'", record.get("format"))
    file = record.get("file")
    if not _relative_file(file) or "/" in str(file) or file != data["weights"]["best"]:
        raise _fail(where, "export.file", "the file named by weights.best, beside model.json",
                    file)
    if not isinstance(record.get("sha256"), str) or not _SHA256.fullmatch(record["sha256"]):
        raise _fail(where, "export.sha256", "64 hex digits", record.get("sha256"))
    opset = record.get("opset")
    if opset is not None and (not isinstance(opset, int) or isinstance(opset, bool)
                              or not 17 <= opset <= 100):
        raise _fail(where, "export.opset", "an integer >= 17 or null", opset)
    stride = record.get("stride")
    if stride is not None and stride not in (8, 16, 32, 64, 128):
        raise _fail(where, "export.stride", "8, 16, 32, 64, 128 or null", stride)
    parity = record.get("parity")
    if not isinstance(parity, dict) or not isinstance(parity.get("passed"), bool):
        raise _fail(where, "export.parity", "an object saying whether it passed", parity)


def _check_postprocess(data: Mapping[str, Any], where: Path) -> None:
    """What predict does after the detector: the lung field (a rule or null) and the lesion
    linking rule; and the operating point training chose (its record)."""
    post = _object(data, "postprocess", where, required=False)
    if post is not None:
        if set(post) != {"lung_field", "lesions"}:
            raise _fail(where, "postprocess", "an object with lung_field and lesions",
                        sorted(post))
        try:
            if post["lung_field"] is not None:
                LungFieldRule.from_dict(post["lung_field"])
            LinkRule.from_dict(post["lesions"])
        except (ConfigError, AttributeError, TypeError) as exc:
            raise RunFolderError(f"{where}: postprocess does not fit ({exc})") from None
    point = _object(data, "operating_point", where, required=False)
    if point is not None and not isinstance(point.get("target"), str):
        raise _fail(where, "operating_point.target", "the target's name",
                    point.get("target"))


def check_fields(data: Mapping[str, Any], where: Path) -> None:
    """Check every field of a model.json (format and version already checked).

    Raises:
        RunFolderError: one line naming the field, what it must be and what was found.
    """
    for key in REQUIRED:
        if key not in data:
            raise RunFolderError(f"{where}: incomplete model.json, missing {key!r}; pass a "
                                 f"run folder written by detect train")
    _check_model(data, where)
    _check_classes(data, where)
    _check_recipe(data, where)
    _check_sizes(data, where)
    _check_weights(data, where)
    _check_dataset(data, where)
    _check_record(data, where)
    _check_export(data, where)
    _check_postprocess(data, where)


def parse_model_json(path: Path) -> Any:
    """The JSON in ``path``, read with limits: at most :data:`MAX_BYTES`, nesting at most
    :data:`MAX_DEPTH`, no ``NaN``/``Infinity``.

    Raises:
        RunFolderError: unreadable, too large, too deep, or not JSON.
    """
    return read_json(path, what="model.json", max_bytes=MAX_BYTES, max_depth=MAX_DEPTH,
                     hint="pass a run folder written by detect train (its model.json is a "
                          "few kB)", error=RunFolderError)
