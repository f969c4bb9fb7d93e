"""The lung-field rule and its parameters: what model.json's recipe records.

One frozen, validated dataclass; :func:`lung_field_rule` gives the default as the dict
that a model's recipe stores, :meth:`LungFieldRule.from_dict` reads it back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from detect.errors import ConfigError

#: The name of the rule in model.json (a later rule gets another name or version).
RULE_NAME = "hu-air-inside-body"
RULE_VERSION = 1

_RANGES: dict[str, tuple[float, float]] = {
    "air_hu": (-1000.0, -100.0),
    "grid_mm": (0.1, 20.0),
    "second_lung_fraction": (0.0, 1.0),
    "close_mm": (0.0, 100.0),
    "dilate_mm": (0.0, 100.0),
    "dilate_z_mm": (0.0, 100.0),
    "min_overlap": (0.0, 0.99),
}


@dataclass(frozen=True)
class LungFieldRule:
    """Where a lung tumour can be, from HU alone (:mod:`detect.lung.field` does it).

    - ``air_hu``: a voxel below this is air (lung parenchyma is about -850 HU, fat -100;
      -400 keeps aerated lung and leaves out fat and soft tissue);
    - ``grid_mm``: the field is worked out on blocks of whole pixels about this wide
      (0.65-1 mm pixels: blocks of 3-4 pixels), which is all a 10 mm margin needs;
    - ``second_lung_fraction``: the largest 3D air component inside the body is kept,
      and the second when its volume is at least this fraction of the largest (two
      lungs; one component when they touch or the airways join them; bowel and stomach
      gas are far smaller);
    - ``close_mm``, ``dilate_mm``: after filling holes (tumours and vessels inside the
      lung), each slice's lungs are closed with a disk of this radius (hilum and
      pleural indentations) and dilated by ``dilate_mm`` (juxta-pleural and hilar
      tumours, whose box reaches past the aerated lung);
    - ``dilate_z_mm``: and grown this far along the series axis (apex and base);
    - ``min_overlap``: a box is kept when more than this fraction of its area lies in
      the field (0: any overlap).
    """

    air_hu: float = -400.0
    grid_mm: float = 3.0
    second_lung_fraction: float = 0.1
    close_mm: float = 10.0
    dilate_mm: float = 10.0
    dilate_z_mm: float = 10.0
    min_overlap: float = 0.0

    def __post_init__(self) -> None:
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or not low <= value <= high:
                raise ConfigError(f"lung field {name}: expected a number in [{low}, {high}], "
                                  f"got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """The rule as model.json's recipe records it (name, version, parameters)."""
        return {"rule": RULE_NAME, "version": RULE_VERSION,
                **{k: float(v) for k, v in asdict(self).items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LungFieldRule:
        """Read :meth:`to_dict`'s form back.

        Raises:
            ConfigError: another rule or version, an unknown or missing key, or a value
                out of range.
        """
        if data.get("rule") != RULE_NAME or data.get("version") != RULE_VERSION:
            raise ConfigError(f"lung field: expected rule {RULE_NAME!r} version {RULE_VERSION},"
                              f" got {data.get('rule')!r} version {data.get('version')!r}")
        names = {f.name for f in fields(cls)}
        given = set(data) - {"rule", "version"}
        if given != names:
            raise ConfigError(f"lung field: expected the parameters {sorted(names)}, got "
                              f"{sorted(given)}")
        return cls(**{name: data[name] for name in names})


def lung_field_rule() -> dict[str, Any]:
    """The default rule, as model.json's recipe records it."""
    return LungFieldRule().to_dict()
