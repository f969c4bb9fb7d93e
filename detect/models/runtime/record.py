"""The link between an exported model file and the model.json beside it.

``detect export`` writes ``model.onnx`` or ``model.torchscript`` and, beside it, the run's
model.json with ``weights.best`` naming that file and an ``export`` section::

    "export": {"format": "onnx", "file": "model.onnx", "sha256": "...", "opset": 17,
               "input": {...}, "stride": 32, "parity": {...}, "source": {...}, ...}

The runtime adapters (:mod:`detect.models.runtime.onnx`,
:mod:`detect.models.runtime.torchscript`) refuse a file that this section does not
describe, so a model only ever runs with the preprocessing its parity check was run with.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from detect.errors import RunFolderError
from detect.runs import ModelInfo
from detect.runs.provenance import file_sha256

__all__ = ["EXPORT_SUFFIXES", "export_record", "file_sha256"]

#: Suffix of an exported file → its format.
EXPORT_SUFFIXES = {".onnx": "onnx", ".torchscript": "torchscript"}


def export_record(info: ModelInfo, weights: Path) -> Mapping[str, Any]:
    """The ``export`` section of ``info`` that describes ``weights``, checked.

    Raises:
        RunFolderError: no export section, one for another file or format, a file whose
            SHA-256 differs from the recorded one, or a failed parity check.
    """
    fmt = EXPORT_SUFFIXES.get(weights.suffix)
    record = info.manifest.get("export")
    hint = f"export it with: detect export --weights RUN --format {fmt or 'onnx'}"
    if not isinstance(record, Mapping):
        raise RunFolderError(
            f"{weights}: the model.json beside it has no 'export' section, so nothing says how "
            f"this file was made; {hint}"
        )
    if record.get("format") != fmt or record.get("file") != weights.name:
        raise RunFolderError(
            f"{weights}: model.json describes the export {record.get('file')!r} "
            f"({record.get('format')}), not this file; pass {record.get('file')!r} or {hint}"
        )
    if record.get("sha256") != file_sha256(weights):
        raise RunFolderError(
            f"{weights} is not the file that was exported and checked (SHA-256 differs from "
            f"model.json); restore it or {hint}"
        )
    parity = record.get("parity")
    if not isinstance(parity, Mapping) or parity.get("passed") is not True:
        raise RunFolderError(f"{weights}: model.json records no passed parity check; {hint}")
    return record
