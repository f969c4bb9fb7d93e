"""``OUT/idc-manifest.json``: what a download is meant to hold, written before any file.

It lists every selected series (patient, study and series UID, modality, instance count,
size in bytes, source URL, folder relative to OUT), the expected totals and the index
rows that were refused. A re-run rewrites it for its own selection; the files of earlier
selections stay where they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from detect import __version__
from detect.download.config import DownloadConfig
from detect.download.index import Selection, SeriesEntry
from detect.errors import DownloadError
from detect.io.atomic import write_json
from detect.runs import now_iso

MANIFEST_NAME = "idc-manifest.json"
MANIFEST_FORMAT = "detect-idc-download"
MANIFEST_VERSION = 1


def series_record(entry: SeriesEntry) -> dict[str, Any]:
    return {
        "patient_id": entry.patient_id,
        "study_instance_uid": entry.study_uid,
        "series_instance_uid": entry.series_uid,
        "modality": entry.modality,
        "instances": entry.instances,
        "size_bytes": entry.size_bytes,
        "source_url": entry.source_url,
        "folder": entry.folder,
    }


def manifest_data(config: DownloadConfig, selection: Selection) -> dict[str, Any]:
    """The manifest of ``selection`` as a JSON-ready dict."""
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "created": now_iso(),
        "detect_version": __version__,
        "collection": selection.collection,
        "index": selection.index_version,
        "endpoint": config.dicomweb.url if config.dicomweb else config.endpoint,
        "selection": {
            "studies": list(config.studies),
            "patients": list(config.patients),
            "letters": list(config.letters),
            "modalities": list(config.modalities),
        },
        "totals": {
            "patients": selection.patients,
            "series": len(selection.series),
            "instances": selection.instances,
            "size_bytes": selection.size_bytes,
            "by_modality": selection.by_modality(),
            "patients_by_letter": selection.patients_by_letter(),
        },
        "series": [series_record(entry) for entry in selection.series],
        "refused": [
            {"series_instance_uid": r.series_uid, "patient_id": r.patient_id, "reason": r.reason}
            for r in selection.refused
        ],
    }


def write_manifest(out: Path, data: dict[str, Any]) -> Path:
    """Write ``OUT/idc-manifest.json`` atomically; OUT is created if needed.

    Raises:
        DownloadError: a file of that name is there and is not a detect manifest (it is
            never overwritten).
    """
    path = out / MANIFEST_NAME
    if path.exists() or path.is_symlink():
        _check_ours(path)
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, data)
    return path


def read_manifest(out: Path) -> dict[str, Any]:
    """The manifest in ``out``.

    Raises:
        DownloadError: missing, unreadable or not a detect download manifest.
    """
    path = out / MANIFEST_NAME
    if not path.is_file():
        raise DownloadError(f"no {MANIFEST_NAME} in {out}: run detect download into it first")
    return _check_ours(path)


def _check_ours(path: Path) -> dict[str, Any]:
    try:
        if path.is_symlink() or not path.is_file():
            raise ValueError("not a regular file")
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format is not {MANIFEST_FORMAT!r}")
    except (OSError, ValueError) as exc:
        raise DownloadError(
            f"{path} is not a detect download manifest ({exc}); it is left as it is: "
            f"choose another OUT or move that file"
        ) from None
    if data.get("version") != MANIFEST_VERSION:
        raise DownloadError(
            f"{path} has manifest version {data.get('version')!r}, expected {MANIFEST_VERSION}"
        )
    return data
