"""PASCAL VOC XML in and out.

The parser is hardened: any DTD (and so any entity declaration, internal or external) is
refused before parsing, as ``forbidden-entity``, so nothing an XML file points to is ever
read and entity expansion bombs never expand. The remaining parse runs with entity
resolution, DTD loading and network access off.

The writer produces files in the style LabelImg wrote for the TCIA archive
(``<Difficult>``, ``<depth>``, ``Unknow`` placeholders), so they open in LabelImg.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from detect.boxes import XYXY, voc_to_xyxy, xyxy_to_voc
from detect.errors import AnnotationError

_MAX_XML_BYTES = 1 << 20  # a LabelImg file is < 2 kB; anything this big is not one


@dataclass(frozen=True)
class VocObject:
    """One object of a VOC file: its raw name and its box in internal xyxy px (a corner may
    be non-finite, as the file wrote it: :func:`detect.boxes.clip_xyxy` calls such a box
    invalid)."""

    name: str
    xyxy: XYXY
    difficult: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class VocAnnotation:
    """A parsed VOC file. ``width``/``height`` are what the file claims (px), 0 if absent."""

    width: int
    height: int
    depth: int
    objects: tuple[VocObject, ...]


def _reject_dtd(raw: bytes) -> None:
    head = raw.lstrip()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise AnnotationError(
            "forbidden-entity",
            "the file declares a DTD or entities; refused without reading what it "
            "points to (LabelImg files never have one)",
        )


_PARSER_OPTIONS = dict(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


def _int_text(element: etree._Element | None, tag: str, default: int | None = None) -> int:
    node = element.find(tag) if element is not None else None
    if node is None or node.text is None or not node.text.strip():
        if default is not None:
            return default
        raise AnnotationError("malformed-xml", f"missing <{tag}>")
    text = node.text.strip()
    try:
        return round(float(text))
    except (ValueError, OverflowError):  # not a number, or inf / nan / 1e400
        raise AnnotationError(
            "malformed-xml", f"<{tag}> is not a finite number: {text[:40]!r}"
        ) from None


def _coordinate(bndbox: etree._Element, tag: str) -> float:
    """A box corner in px: rounded as LabelImg's integers, or the non-finite value itself
    (``inf``, ``nan``, ``1e400``) for the caller to report the object as ``box-invalid``."""
    node = bndbox.find(tag)
    text = (node.text or "").strip() if node is not None else ""
    if not text:
        raise AnnotationError("malformed-xml", f"missing <{tag}>")
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError("malformed-xml", f"<{tag}> is not a number: {text[:40]!r}") from None
    return float(round(value)) if math.isfinite(value) else value


def _flag(element: etree._Element, *tags: str) -> bool:
    for tag in tags:
        node = element.find(tag)
        if node is not None and node.text and node.text.strip() not in ("", "0"):
            return True
    return False


def parse_voc_bytes(raw: bytes) -> VocAnnotation:
    """Parse VOC XML from bytes.

    Raises:
        AnnotationError: ``forbidden-entity`` for a DTD/entities, ``malformed-xml`` for
            anything that is not a VOC annotation with numeric boxes.
    """
    if len(raw) > _MAX_XML_BYTES:
        raise AnnotationError("malformed-xml", f"file is {len(raw)} bytes; not a VOC file")
    _reject_dtd(raw)
    parser = etree.XMLParser(**_PARSER_OPTIONS)  # type: ignore[arg-type]
    try:
        root = etree.fromstring(raw, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise AnnotationError("malformed-xml", f"not well-formed XML: {exc}") from None
    if root is None or root.tag != "annotation":
        tag = None if root is None else root.tag
        raise AnnotationError("malformed-xml", f"root element is {tag!r}, expected 'annotation'")
    size = root.find("size")
    objects = []
    for index, obj in enumerate(root.iter("object")):
        name_node = obj.find("name")
        name = (name_node.text or "").strip() if name_node is not None else ""
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise AnnotationError("malformed-xml", f"object {index} has no <bndbox>")
        xyxy = voc_to_xyxy(*(_coordinate(bndbox, tag) for tag in ("xmin", "ymin", "xmax", "ymax")))
        objects.append(
            VocObject(
                name=name,
                xyxy=xyxy,
                difficult=_flag(obj, "difficult", "Difficult"),
                truncated=_flag(obj, "truncated"),
            )
        )
    return VocAnnotation(
        width=_int_text(size, "width", 0),
        height=_int_text(size, "height", 0),
        depth=_int_text(size, "depth", 0),
        objects=tuple(objects),
    )


def parse_voc(path: Path) -> VocAnnotation:
    """Parse a VOC XML file (see :func:`parse_voc_bytes`).

    Raises:
        AnnotationError: as :func:`parse_voc_bytes`, or ``malformed-xml`` if unreadable.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_XML_BYTES + 1)
    except OSError as exc:
        raise AnnotationError("malformed-xml", f"cannot read: {exc.strerror}") from None
    return parse_voc_bytes(raw)


def slice_uid_of(path: Path) -> str:
    """The SOPInstanceUID an XML annotates, by its name: ``<SOPInstanceUID>.xml`` (the
    archive's) or ``<prefix>_<SOPInstanceUID>.xml`` (``detect predict``'s, which put the
    series and slice number first; a UID never holds ``_``), so predict's VOC folder,
    corrected in LabelImg, converts like the archive's."""
    return path.stem.rsplit("_", 1)[-1]


def voc_xml_bytes(
    objects: Sequence[VocObject],
    width: int,
    height: int,
    depth: int = 1,
    *,
    folder: str = "Unknow",
    filename: str = "Unknow",
    path: str = "Unknow",
    scores: Sequence[float] | None = None,
) -> bytes:
    """Serialise boxes as LabelImg-style VOC XML (the TCIA archive's style).

    ``scores``, when given, are written as an extra ``<score>`` per object; LabelImg
    ignores unknown tags.
    """
    root = etree.Element("annotation", verified="no")
    for tag, text in (("folder", folder), ("filename", filename), ("path", path)):
        etree.SubElement(root, tag).text = text
    source = etree.SubElement(root, "source")
    source.text = "Unknow"
    etree.SubElement(source, "database").text = "Unknown"
    size = etree.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", depth)):
        etree.SubElement(size, tag).text = str(value)
    etree.SubElement(root, "segmented").text = "0"
    for index, obj in enumerate(objects):
        node = etree.SubElement(root, "object")
        etree.SubElement(node, "name").text = obj.name
        etree.SubElement(node, "pose").text = "Unspecified"
        etree.SubElement(node, "truncated").text = "1" if obj.truncated else "0"
        etree.SubElement(node, "Difficult").text = "1" if obj.difficult else "0"
        if scores is not None:
            etree.SubElement(node, "score").text = f"{scores[index]:.4f}"
        box = etree.SubElement(node, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), xyxy_to_voc(obj.xyxy)):
            etree.SubElement(box, tag).text = str(value)
    return bytes(etree.tostring(root, pretty_print=True, encoding="utf-8"))
