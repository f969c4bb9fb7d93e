"""detect.io.paths: values from inside files become safe, distinct names."""

from __future__ import annotations

from pathlib import Path

import pytest

from detect.errors import UnsafePathError
from detect.io.paths import SAFE_NAME, inside, safe_component

HOSTILE = ["../../x", "/etc/x", "a\\b", "..", ".", "", " ", ".hidden", "Ünïcødé 患者",
           "Z" * 300, "a/b", "a_b-0", "con", "x\x00y", "\u202egnp.exe"]


@pytest.mark.parametrize("value", HOSTILE)
def test_every_value_becomes_one_safe_component(value):
    name = safe_component(value)
    assert SAFE_NAME.fullmatch(name) and not name.startswith(".")
    assert len(name) <= 64
    assert inside(Path("/out"), name).parent == Path("/out")


def test_safe_values_are_kept_and_distinct_values_stay_distinct():
    for real in ("A0002", "Lung_Dx-A0002", "1.3.6.1.4.1.14519.5.2.1.6655.2359.1"):
        assert safe_component(real) == real
    names = [safe_component(v) for v in HOSTILE]
    assert len(set(names)) == len(HOSTILE)
    assert safe_component("a/b") != safe_component("a_b")
    assert safe_component("Z" * 300) != safe_component("Z" * 301)


@pytest.mark.parametrize("component", ["..", ".", "a/b", "/etc", "", "a\\b"])
def test_inside_refuses_anything_but_a_safe_component(component):
    with pytest.raises(UnsafePathError):
        inside(Path("/out"), "images", component)
