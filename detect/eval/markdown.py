"""report.md: the report's blocks as plain Markdown. Every text goes through
:func:`md_text`, so a value from data (a patient ID, a path) reads as itself: backslash
escapes where Markdown needs them, never an HTML entity, never a link, an image, HTML,
emphasis, a code span, a heading or a table cell break.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: A report block: ("h1" | "h2" | "h3" | "p" | "note", text), ("table", (header, rows)),
#: ("img", (path, alt)).
Block = tuple[str, Any]

#: Characters backslash-escaped wherever they stand: a backslash (so data cannot undo an
#: escape), a code span, emphasis, a link or image, a raw HTML tag or autolink,
#: strikethrough. CommonMark lets any ASCII punctuation be escaped this way.
_MD_ALWAYS = frozenset("\\`*[]<~")
#: ``_`` only where it could open or close emphasis (not inside a word: ``Lung_Dx``).
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
#: ``&`` only where it would start an entity (``&lt;``, ``&#60;``).
_MD_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")
#: What would open a block at the start of a paragraph: a quote, a heading, a list item
#: or thematic break, an ordered list number.
_MD_BLOCK_START = re.compile(r"^(?:>|#{1,6}(?=\s|$)|[-+](?=[\s-]|$)|\d{1,9}(?=[.)](?:\s|$)))")
#: Where GitHub-flavoured Markdown would make a link of bare text (URL, www., e-mail).
_MD_AUTOLINK = re.compile(r"(?<=[A-Za-z])(:)(?=//)|(?<=www)(\.)|(@)")


def md_text(text: object, *, block: bool = False) -> str:
    """``text`` as plain, inert Markdown, with no HTML entity: the characters that would
    make markup (a link, an image, raw HTML, a code span, emphasis, an entity, an
    autolink) backslash-escaped and line breaks as spaces; with ``block`` (a paragraph of
    its own), also a start that would open a block (``>``, ``#``, ``-``, ``1.``). So a
    value from a DICOM header or a file name reads as itself and never becomes markup."""
    flat = " ".join(str(text).splitlines()).strip()
    escaped = "".join(f"\\{c}" if c in _MD_ALWAYS else c for c in flat)
    escaped = _MD_UNDERSCORE.sub(r"\\_", escaped)
    escaped = _MD_ENTITY.sub(r"\\&", escaped)
    escaped = _MD_AUTOLINK.sub(lambda m: "\\" + m.group(0), escaped)
    if not block:
        return escaped
    return _MD_BLOCK_START.sub(lambda m: m.group(0) + "\\" if m.group(0)[0].isdigit()
                               else "\\" + m.group(0), escaped, count=1)


def _md_cell(text: object) -> str:
    return md_text(text).replace("|", "\\|")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(map(_md_cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(blocks: Sequence[Block], out: Path) -> str:
    """Render blocks as Markdown (figures linked by relative path); every text from the
    blocks goes through :func:`md_text`, so data fields (patient IDs, paths) stay text."""
    render: dict[str, Callable[[Any], str]] = {
        "h1": lambda t: f"# {md_text(t)}", "h2": lambda t: f"## {md_text(t)}",
        "h3": lambda t: f"### {md_text(t)}",
        "p": lambda t: md_text(t, block=True), "note": lambda t: f"> **{md_text(t)}**",
        "table": lambda v: _md_table(*v),
        "img": lambda v: f"![{md_text(v[1])}]({Path(os.path.relpath(v[0], out)).as_posix()})",
    }
    return "\n\n".join(render[kind](value) for kind, value in blocks) + "\n"
