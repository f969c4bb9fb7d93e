"""The linking rule and its parameters: what model.json's recipe records.

:func:`lesion_rule` gives the default as a dict; :meth:`LinkRule.from_dict` reads it back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from detect.errors import ConfigError

RULE_NAME = "link-overlapping-slices"
RULE_VERSION = 1
#: How a lesion's score is made from its boxes' scores (the only one so far).
SCORE_MAX = "max"


@dataclass(frozen=True)
class LinkRule:
    """How slice boxes become 3D lesion candidates (:mod:`detect.lesions.link`).

    - ``iou``: two boxes on nearby slices of one series belong to one lesion when their
      in-plane IoU (in the series' plane, mm; px without geometry) is at least this;
    - ``max_gap``: nearby = at most this many slice positions without a box between them
      (1: a slice the detector or the annotator skipped does not split a tumour);
    - ``score``: a lesion's score is the highest of its boxes' (``max``). Why max: the
      lesions at a threshold then hold every box at or above it, so the slice outputs and
      the lesion outputs at one operating point show the same findings; a mean would
      demote a tumour seen well on one slice and poorly on its edges, and leave its best
      box in no reported lesion;
    - ``lone_min_score``: a lesion of a single box (one slice) scoring below this is
      dropped (0: keep every lesion). Off by default: its value belongs with the
      operating point, chosen on validation data.
    """

    iou: float = 0.1
    max_gap: int = 1
    score: str = SCORE_MAX
    lone_min_score: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.iou, bool) or not isinstance(self.iou, (int, float)) \
                or not math.isfinite(self.iou) or not 0.0 < self.iou <= 1.0:
            raise ConfigError(f"lesion link iou: expected a number in (0, 1], got {self.iou!r}")
        if isinstance(self.max_gap, bool) or not isinstance(self.max_gap, int) \
                or not 0 <= self.max_gap <= 10:
            raise ConfigError(f"lesion link max_gap: expected an integer in [0, 10] slices, "
                              f"got {self.max_gap!r}")
        if self.score != SCORE_MAX:
            raise ConfigError(f"lesion score: expected {SCORE_MAX!r}, got {self.score!r}")
        lone = self.lone_min_score
        if isinstance(lone, bool) or not isinstance(lone, (int, float)) \
                or not math.isfinite(lone) or not 0.0 <= lone <= 1.0:
            raise ConfigError(f"lesion lone_min_score: expected a score in [0, 1], got "
                              f"{lone!r}")

    def to_dict(self) -> dict[str, Any]:
        """The rule as model.json's recipe records it (name, version, parameters)."""
        return {"rule": RULE_NAME, "version": RULE_VERSION, "iou": float(self.iou),
                "max_gap": int(self.max_gap), "score": self.score,
                "lone_min_score": float(self.lone_min_score)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LinkRule:
        """Read :meth:`to_dict`'s form back.

        Raises:
            ConfigError: another rule or version, unknown or missing keys, bad values.
        """
        if data.get("rule") != RULE_NAME or data.get("version") != RULE_VERSION:
            raise ConfigError(f"lesion link: expected rule {RULE_NAME!r} version "
                              f"{RULE_VERSION}, got {data.get('rule')!r} version "
                              f"{data.get('version')!r}")
        names = {"iou", "max_gap", "score", "lone_min_score"}
        if set(data) - {"rule", "version"} != names:
            raise ConfigError(f"lesion link: expected the parameters {sorted(names)}, got "
                              f"{sorted(set(data) - {'rule', 'version'})}")
        return cls(iou=data["iou"], max_gap=data["max_gap"], score=data["score"],
                   lone_min_score=data["lone_min_score"])


def lesion_rule() -> dict[str, Any]:
    """The default rule, as model.json's recipe records it."""
    return LinkRule().to_dict()
