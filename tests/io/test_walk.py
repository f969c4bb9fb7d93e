"""detect.io.walk: links followed once, loops cut, every skip reported, stable order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from detect.io.walk import walk_tree


def _tree(root: Path) -> Path:
    """data/{p1/a.dcm, p1/sub/b.dcm, p2/c.dcm} somewhere else, linked from root."""
    data = root / "elsewhere"
    (data / "p1" / "sub").mkdir(parents=True)
    (data / "p2").mkdir()
    for rel in ("p1/a.dcm", "p1/sub/b.dcm", "p2/c.dcm"):
        (data / rel).write_text(rel)
    linked = root / "linked"
    linked.mkdir()
    (linked / "Lung_Dx-A0001").symlink_to(data / "p1", target_is_directory=True)
    (linked / "Lung_Dx-A0002").symlink_to(data / "p2", target_is_directory=True)
    return linked


def _rel(paths, root: Path) -> list[str]:
    return [str(Path(p).relative_to(root)) for p in paths]


def test_folder_links_are_followed_and_paths_stay_under_the_root(tmp_path):
    root = _tree(tmp_path)
    result = walk_tree(root)
    assert _rel(result.files, root) == [
        "Lung_Dx-A0001/a.dcm", "Lung_Dx-A0001/sub/b.dcm", "Lung_Dx-A0002/c.dcm"
    ]
    assert result.skipped == []


def test_loops_duplicates_and_dangling_links_are_cut_and_reported(tmp_path):
    root = _tree(tmp_path)
    patient = root / "Lung_Dx-A0001"
    (patient / "sub" / "up").symlink_to(root, target_is_directory=True)  # back to the root
    (root / "again").symlink_to(tmp_path / "elsewhere" / "p2", target_is_directory=True)
    (root / "gone.dcm").symlink_to(tmp_path / "nothing-here.dcm")
    (root / "ring1").symlink_to(root / "ring2")
    (root / "ring2").symlink_to(root / "ring1")
    (root / "c-again.dcm").symlink_to(tmp_path / "elsewhere" / "p2" / "c.dcm")
    os.mkfifo(root / "pipe")
    result = walk_tree(root)
    assert _rel(result.files, root) == [
        "Lung_Dx-A0001/a.dcm", "Lung_Dx-A0001/sub/b.dcm", "Lung_Dx-A0002/c.dcm"
    ]
    kinds = {str(s.path.relative_to(root)): s.kind for s in result.skipped}
    assert kinds == {
        "Lung_Dx-A0001/sub/up": "symlink-loop",
        "again": "duplicate-path",  # names sort by code point: 'L' before 'a'
        "gone.dcm": "dangling-link",
        "ring1": "symlink-loop",
        "ring2": "symlink-loop",
        "c-again.dcm": "duplicate-path",
        "pipe": "unreadable-path",
    }
    again = next(s for s in result.skipped if s.path.name == "again")
    assert "Lung_Dx-A0002" in again.detail


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode")
def test_an_unreadable_folder_is_reported(tmp_path):
    root = _tree(tmp_path)
    locked = root / "locked"
    locked.mkdir()
    (locked / "x.dcm").write_text("x")
    locked.chmod(0)
    try:
        result = walk_tree(root)
    finally:
        locked.chmod(0o755)
    assert [(s.path.name, s.kind) for s in result.skipped] == [("locked", "unreadable-path")]


def test_excluded_folders_are_not_entered_and_a_file_root_is_itself(tmp_path):
    root = _tree(tmp_path)
    out = root / "out"
    out.mkdir()
    (out / "image.png").write_text("x")
    assert "out/image.png" not in _rel(walk_tree(root, exclude=[out]).files, root)
    single = walk_tree(root / "Lung_Dx-A0002" / "c.dcm")
    assert single.files == [root / "Lung_Dx-A0002" / "c.dcm"]


def test_a_deep_tree_does_not_hit_the_recursion_limit(tmp_path):
    deep = tmp_path / "deep"
    folders = [str(deep)]
    for _ in range(1100):  # deeper than Python's default recursion limit (1000)
        folders.append(folders[-1] + "/d")
    for folder in folders:
        os.mkdir(folder)
    Path(folders[-1], "x.dcm").write_text("x")
    try:
        assert len(walk_tree(deep).files) == 1
    finally:  # shutil.rmtree (pytest's clean-up) recurses and would fail on this tree
        os.remove(Path(folders[-1], "x.dcm"))
        for folder in reversed(folders):
            os.rmdir(folder)
