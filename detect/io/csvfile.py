"""The one CSV writer: every CSV detect writes goes through :func:`write_csv`.

Cells come from untrusted files (patient IDs, series descriptions, file names, error
details), and a spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or
a tab or carriage return before one) as a formula. Following OWASP's advice on CSV
injection, such a text cell is written with a leading single quote, which spreadsheets show
as text and scripts can strip. Numbers stay numbers: an ``int``/``float`` cell, or a text
cell that is a plain decimal number such as ``-0.5`` or ``1e-3``, cannot be a formula and
is written unchanged.

Files are UTF-8. A file name is bytes on Linux, and one that is not UTF-8 reaches Python
with its odd bytes as lone surrogates, which UTF-8 cannot encode: such a cell gets each
odd byte written as ``\\xNN`` (the path stays recognisable; the file stays UTF-8).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from detect.io.atomic import atomic_path

#: First characters a spreadsheet may read as the start of a formula (OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def utf8_text(text: str) -> str:
    """``text`` as it is when UTF-8 can encode it, else with its undecodable bytes (lone
    surrogates) written as ``\\xNN`` (module docstring)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def safe_cell(value: object) -> object:
    """``value`` as a CSV cell that no spreadsheet runs (module docstring): None → empty,
    numbers as they are, text that starts like a formula behind a single quote, bytes
    that are not UTF-8 as ``\\xNN``."""
    if value is None:
        return ""
    if isinstance(value, (bool, int, float)):
        return value
    text = utf8_text(str(value))
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> int:
    """Write ``rows`` (keys beyond ``columns`` ignored, missing ones empty) to ``path``
    atomically, every cell through :func:`safe_cell`. Returns how many rows were written."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: safe_cell(row.get(key)) for key in columns})
            count += 1
    return count
