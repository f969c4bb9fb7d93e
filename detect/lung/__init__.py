"""The lung field: where in a CT series a lung tumour can be, from HU alone
(:mod:`.field`, on :mod:`.morphology`), and its recorded rule (:mod:`.rule`). Layer 1: numpy
and detect's errors only."""

from detect.lung.field import (
    LungField,
    LungFieldUnavailable,
    air_inside_body,
    block_size,
    build_lung_field,
    pixel_size,
)
from detect.lung.rule import LungFieldRule, lung_field_rule

__all__ = [
    "LungField",
    "LungFieldRule",
    "LungFieldUnavailable",
    "air_inside_body",
    "block_size",
    "build_lung_field",
    "lung_field_rule",
    "pixel_size",
]
