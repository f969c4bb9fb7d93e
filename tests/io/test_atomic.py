"""io.atomic: a file is the old one or the whole new one, never half; the streamed table
reads back as the same JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detect.io.atomic import atomic_path, write_json, write_json_table


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path):
    target = tmp_path / "sub" / "data.json"
    write_json(target, {"n": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"n": 2, "half')
        raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"n": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["data.json"]


@pytest.mark.parametrize("head", [{}, {"version": 2, "note": 'quote " and \\ and é'}])
def test_a_streamed_table_reads_back_as_the_same_json(tmp_path: Path, head):
    table = {f"/data/p{i}/1-{i:02d}.dcm": {"key": f"{i}:0", "header": {"rows": 512, "x": None,
                                                                       "list": [1.5, -2]}}
             for i in range(50)}
    table["name with \"quotes\" and ü"] = {"issue": {"kind": "not-dicom"}}
    path = tmp_path / "cache.json"
    write_json_table(path, head, "files", table)
    assert json.loads(path.read_text()) == {**head, "files": table}
    write_json_table(path, head, "files", {})
    assert json.loads(path.read_text()) == {**head, "files": {}}
