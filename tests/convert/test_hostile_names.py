"""No value from inside a file places a file outside OUT: hostile PatientIDs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.hostile import rewrite, run_cli

SAFE = re.compile(r"[A-Za-z0-9._-]+")
HOSTILE_IDS = {
    "dotdot": "../../x",
    "etc": "/etc/x",
    "backslash": "..\\..\\x\\y",
    "unicode": "Ünïcødé 患者 ☢",
    "long": "Lung_Dx-" + "Z" * 300,
    "dots": "..",
}


def _files(root: Path, skip: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if skip not in p.parents and p != skip}


@pytest.mark.parametrize("name", sorted(HOSTILE_IDS))
def test_a_hostile_patient_id_never_places_a_file_outside_out(small_cohort, tmp_path, name):
    value = HOSTILE_IDS[name]
    cohort = small_cohort.copy(tmp_path / "in")
    patient = sorted(cohort.dicom_root.iterdir())[0]
    charset = "ISO_IR 192" if name == "unicode" else None
    for path in patient.rglob("*.dcm"):
        rewrite(path, PatientID=value, **({"SpecificCharacterSet": charset} if charset else {}))
    out = tmp_path / "work" / "deep" / "out"
    out.parent.mkdir(parents=True)
    etc_before = set(Path("/etc").glob("x*"))
    before = _files(tmp_path, out)
    done = run_cli("convert", cohort.dicom_root, cohort.annotation_root, out, "--workers", "1")
    assert done.exit_code == 0, done.output
    assert _files(tmp_path, out) == before  # nothing written beside OUT
    assert set(Path("/etc").glob("x*")) == etc_before
    written = [p for p in out.rglob("*") if p.is_file()]
    for path in written:
        assert out.resolve() in path.resolve().parents
        for part in path.relative_to(out).parts:
            assert SAFE.fullmatch(part) and part not in (".", ".."), path
            assert len(part) <= 160, path
    manifest = json.loads((out / "dataset.json").read_text())
    # every image once in its patient's split (a val split filled from train repeats some)
    assert sum(entry["images"] for entry in manifest["patients"].values()) == 12
    hostile = [p for p in manifest["patients"] if p not in ("A0002", "G0001", "A0001")]
    assert len(hostile) == 1  # the patient keeps its own ID as data, not as a path
    coco = {s: json.loads((out / "coco" / f"{s}.json").read_text()) for s in ("train", "val",
                                                                                "test")}
    for split, data in coco.items():
        for image in data["images"]:
            assert (out / image["file_name"]).is_file()
            assert image["file_name"].startswith(f"images/{split}/")
