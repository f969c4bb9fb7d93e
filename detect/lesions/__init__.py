"""3D lesion candidates from slice boxes: linking (:mod:`.link`) and its recorded rule
(:mod:`.rule`). Layer 1: numpy and detect's boxes, errors and slice geometry only."""

from detect.lesions.link import Lesion, LinkedSeries, SliceBox, link_groups, link_series
from detect.lesions.rule import LinkRule, lesion_rule

__all__ = [
    "Lesion",
    "LinkRule",
    "LinkedSeries",
    "SliceBox",
    "lesion_rule",
    "link_groups",
    "link_series",
]
