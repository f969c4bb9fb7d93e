"""Every model family detect knows: one module each, holding the family's object (torch-free).

A module here defines ``FAMILIES``, the :class:`~detect.models.family.Family` objects it
adds; :data:`FAMILIES` below collects every module's, so a new family is one new module
(its engine code, if it needs new code, beside it under ``detect/models/``). Look families
up through :mod:`detect.models.registry`.
"""

from __future__ import annotations

import importlib
import pkgutil

from detect.models.family import Family


def _collect() -> tuple[Family, ...]:
    found: list[Family] = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        found.extend(importlib.import_module(f"{__name__}.{module.name}").FAMILIES)
    return tuple(sorted(found, key=lambda family: family.rank))


#: Every family, in the order ``--help`` lists them.
FAMILIES: tuple[Family, ...] = _collect()
