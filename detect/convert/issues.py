"""Accounting entries: every input that was not converted (or was, with a warning).

An entry is ``{"kind", "path", "detail", "action"}``; ``path`` is relative to the root the
input came from (``dicom`` or ``annotation``, named in ``root``). ``action`` says what
the converter did: ``skipped`` (nothing of it is in the dataset), ``converted`` (it is,
with a warning: ``label-case``, ``box-clipped``, ``label-mismatch``,
``sources-differ``, ``duplicate-annotation`` for a box counted once) or
``object-dropped`` (the image is in the dataset without that one object).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ISSUE_KINDS: tuple[str, ...] = (
    "malformed-xml",
    "forbidden-entity",
    "unknown-label",
    "label-mismatch",
    "label-case",
    "missing-dicom",
    "unreadable-dicom",
    "not-dicom",
    "unsupported-dicom",
    "fused-image",
    "empty-annotation",
    "box-clipped",
    "box-invalid",
    "unreadable-sr",
    "sources-differ",
    "image-too-large",
    "missing-rescale",
    "implausible-value",
    "duplicate-annotation",
    "uid-conflict",
    "patient-mismatch",
    "neighbour-mismatch",
    "symlink-loop",
    "dangling-link",
    "duplicate-path",
    "unreadable-path",
)
ACTIONS = ("skipped", "converted", "object-dropped")


@dataclass(frozen=True)
class Issue:
    """One accounting entry (see module docstring)."""

    kind: str
    path: str
    detail: str
    root: str = "annotation"
    action: str = "skipped"

    def __post_init__(self) -> None:
        if self.kind not in ISSUE_KINDS:
            raise ValueError(f"issue kind must be one of {ISSUE_KINDS}, got {self.kind!r}")
        if self.action not in ACTIONS:
            raise ValueError(f"issue action must be one of {ACTIONS}, got {self.action!r}")
        if self.root not in ("annotation", "dicom"):
            raise ValueError(f"issue root must be 'annotation' or 'dicom', got {self.root!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Issue:
        return cls(**data)
