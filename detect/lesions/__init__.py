"""3D lesion candidates from slice boxes: linking (:mod:`.link`) and its recorded rule
(:mod:`.rule`). Layer 1: numpy and detect's boxes, errors and slice geometry only."""

from detect.lesions.link import (
    Groups,
    Lesion,
    LinkedSeries,
    SliceBox,
    link_edges,
    link_groups,
    link_series,
)
from detect.lesions.rule import LinkRule, lesion_rule

__all__ = [
    "Groups",
    "Lesion",
    "LinkRule",
    "LinkedSeries",
    "SliceBox",
    "lesion_rule",
    "link_edges",
    "link_groups",
    "link_series",
]
