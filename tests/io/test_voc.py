
import pytest
from support.realdata import REALDATA_ROOT

from detect.errors import AnnotationError
from detect.histology import normalise_label, patient_letter, short_patient_id
from detect.io.voc import VocObject, parse_voc, parse_voc_bytes, voc_xml_bytes

REAL = REALDATA_ROOT / "lung-pet-ct-dx-A0002"

TCIA_STYLE = b"""<annotation verified="no">
  <folder>Unknow</folder>
  <filename>Unknow</filename>
  <path>Unknow</path>
  <source>Unknow<database>Unknown</database>
  </source>
  <size><width>512</width><height>512</height><depth>1</depth></size>
  <segmented>0</segmented>
  <object>
    <name>a</name><pose>Unspecified</pose><truncated>0</truncated><Difficult>1</Difficult>
    <bndbox><xmin>146</xmin><ymin>285</ymin><xmax>207</xmax><ymax>335</ymax></bndbox>
  </object>
</annotation>"""


def test_parses_tcia_quirks():
    ann = parse_voc_bytes(TCIA_STYLE)
    assert (ann.width, ann.height, ann.depth) == (512, 512, 1)
    assert ann.objects == (VocObject("a", (146.0, 285.0, 207.0, 335.0), difficult=True),)


def test_writer_round_trips_and_keeps_labelimg_style():
    objects = [VocObject("G", (10.0, 20.0, 30.0, 44.0)), VocObject("G", (1.0, 2.0, 3.0, 4.0))]
    raw = voc_xml_bytes(objects, 128, 96, scores=[0.9, 0.25])
    assert b"<Difficult>0</Difficult>" in raw and b"<folder>Unknow</folder>" in raw
    assert b"<score>0.9000</score>" in raw
    back = parse_voc_bytes(raw)
    assert back.objects == tuple(objects) and (back.width, back.height) == (128, 96)


def test_external_entity_is_refused_without_reading(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    xxe = f"""<?xml version="1.0"?>
<!DOCTYPE annotation [<!ENTITY xxe SYSTEM "file://{secret}">]>
<annotation><object><name>&xxe;</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax>
<ymax>5</ymax></bndbox></object></annotation>"""
    path = tmp_path / "x.xml"
    path.write_text(xxe)
    with pytest.raises(AnnotationError) as info:
        parse_voc(path)
    assert info.value.kind == "forbidden-entity"
    assert "TOP-SECRET" not in str(info.value)


def test_billion_laughs_is_refused():
    lol = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10 if i > 1 else b"&lol;" * 10)
            for i in range(1, 10)
        )
        + b"]><annotation><object><name>&lol9;</name></object></annotation>"
    )
    with pytest.raises(AnnotationError) as info:
        parse_voc_bytes(lol)
    assert info.value.kind == "forbidden-entity"


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"<annotation><object><name>A</name>", "well-formed"),
        (b"<notvoc/>", "root element"),
        (b"<annotation><object><name>A</name></object></annotation>", "bndbox"),
        (
            b"<annotation><object><name>A</name><bndbox><xmin>x</xmin><ymin>1</ymin><xmax>2"
            b"</xmax><ymax>3</ymax></bndbox></object></annotation>",
            "not a number",
        ),
    ],
)
def test_malformed(raw, message):
    with pytest.raises(AnnotationError, match=message) as info:
        parse_voc_bytes(raw)
    assert info.value.kind == "malformed-xml"


def test_labels():
    assert normalise_label("A") == ("A", False)
    assert normalise_label(" g ") == ("G", True)
    for bad in ("Q", "A0192", "", "tumor"):
        with pytest.raises(AnnotationError) as info:
            normalise_label(bad)
        assert info.value.kind == "unknown-label"
    assert patient_letter("Lung_Dx-B0012") == "B"
    assert patient_letter("e0001") == "E"
    assert short_patient_id("Lung_Dx-A0002") == "A0002"
    with pytest.raises(ValueError, match="Lung_Dx"):
        patient_letter("anonymous")


@pytest.mark.skipif(not REAL.is_dir(), reason="shared/realdata sample absent")
def test_real_archive_files_parse():
    files = sorted((REAL / "Annotation" / "A0002").glob("*.xml"))
    assert len(files) == 18
    for path in files:
        ann = parse_voc(path)
        assert ann.depth == 1 and len(ann.objects) == 1 and ann.objects[0].name == "A"
        x1, y1, x2, y2 = ann.objects[0].xyxy
        assert 0 <= x1 < x2 <= ann.width and 0 <= y1 < y2 <= ann.height
