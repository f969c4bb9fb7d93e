"""OUT belongs to the user: convert never deletes or overwrites a file it did not write,
two converts never write one OUT at once, a dataset never mixes two recipes, and a
finished dataset is replaced only with --overwrite (saying so), while the same command
again continues an interrupted run or changes nothing."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.hostile import one_line_error, run_cli

from detect.convert import convert
from detect.convert.config import ConvertConfig


def _user_files(out: Path) -> dict[str, bytes]:
    files = {
        "images/train/mine.png": b"my own picture",
        "labels/train/mine.txt": b"0 0.5 0.5 0.1 0.1\n",
        "dataset.json": b'{"mine": true}\n',
        "notes.txt": b"do not touch",
    }
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    return files


def _unchanged(out: Path, files: dict[str, bytes], *, except_: tuple[str, ...] = ()) -> None:
    for rel, data in files.items():
        if rel not in except_:
            assert (out / rel).read_bytes() == data, rel


def test_a_folder_of_the_users_own_files_is_refused(small_cohort, tmp_path):
    out = tmp_path / "mine"
    files = _user_files(out)
    one_line_error(
        run_cli("convert", small_cohort.dicom_root, small_cohort.annotation_root, out,
                "--workers", "1"),
        str(out), "not written by detect convert", "--overwrite",
    )
    _unchanged(out, files)
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "images", "labels",
                                                     "notes.txt"]


def test_overwrite_never_converts_into_the_users_own_files(small_cohort, tmp_path):
    out = tmp_path / "mine"
    files = _user_files(out)
    one_line_error(
        run_cli("convert", small_cohort.dicom_root, small_cohort.annotation_root, out,
                "--workers", "1", "--overwrite"),
        str(out), "not written by detect convert", "never other files",
    )
    _unchanged(out, files)
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "images", "labels",
                                                     "notes.txt"]


def _snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*")
            if p.is_file() and p.name != ".lock"}


def test_other_options_are_refused_and_replace_only_with_overwrite(small_cohort, tmp_path,
                                                                   caplog):
    out = tmp_path / "ds"
    args = ["convert", small_cohort.dicom_root, small_cohort.annotation_root, out,
            "--workers", "1"]
    assert run_cli(*args).exit_code == 0
    mine = {out / "images" / "train" / "added-by-hand.png": b"x", out / "notes.txt": b"y"}
    for path, data in mine.items():
        path.write_bytes(data)
    fingerprint = hashlib.sha256((out / "dataset.json").read_bytes()).hexdigest()[:12]
    before = _snapshot(out)
    line = one_line_error(
        run_cli(*args, "--seed", "3"), f"{out} holds the dataset of ",
        f"(fingerprint {fingerprint}, recipe windows lung/mediastinum/wide, classes A,B,E,G)",
        "which this run would change (other options: seed 0 -> 3)",
        "pass --overwrite to replace it (runs trained on it will no longer match it), or "
        "another OUT")
    assert re.search(r"the dataset of \d{4}-\d\d-\d\d \d\d:\d\d ", line), line
    assert _snapshot(out) == before  # refused before anything was touched
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        done = run_cli(*args, "--seed", "3", "--overwrite")
    assert done.exit_code == 0, done.output
    said = [r.getMessage() for r in caplog.records if "replacing" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("replacing the dataset of ")
    assert said[0].endswith(f"in {out}: runs trained on it no longer match it (other "
                            f"options: seed 0 -> 3)")
    assert json.loads((out / "dataset.json").read_text())["seed"] == 3
    for path, data in mine.items():
        assert path.read_bytes() == data  # the user's files stay
    listed = set()
    for split in ("train", "val", "test"):
        coco = json.loads((out / "coco" / f"{split}.json").read_text())
        listed |= {image["file_name"] for image in coco["images"]}
    pngs = {str(p.relative_to(out)) for p in (out / "images").rglob("*.png")}
    assert pngs == listed | {"images/train/added-by-hand.png"}


def test_the_same_command_again_changes_nothing_and_says_nothing(small_cohort, tmp_path,
                                                                 caplog):
    out = tmp_path / "ds"
    args = ["convert", small_cohort.dicom_root, small_cohort.annotation_root, out,
            "--workers", "1"]
    assert run_cli(*args).exit_code == 0
    before = _snapshot(out)
    with caplog.at_level(logging.WARNING):
        again = run_cli(*args)
    assert again.exit_code == 0, again.output
    assert not [r for r in caplog.records if "replacing" in r.getMessage()]
    after = _snapshot(out)
    assert after["dataset.json"] == before["dataset.json"]
    assert {k for k in after if k.startswith("images/")} == {
        k for k in before if k.startswith("images/")}


def test_changed_inputs_are_a_replacement_too(small_cohort, tmp_path):
    annotations = tmp_path / "ann"
    shutil.copytree(small_cohort.annotation_root, annotations)
    out = tmp_path / "ds"
    args = ["convert", small_cohort.dicom_root, annotations, out, "--workers", "1"]
    assert run_cli(*args).exit_code == 0
    before = _snapshot(out)
    xml = sorted(annotations.rglob("*.xml"))[0]
    orphan = xml.parent / "9.9.9.9.9.xml"  # an XML of no slice: a new accounting issue
    shutil.copyfile(xml, orphan)
    one_line_error(run_cli(*args), "which this run would change (inputs changed: "
                                   "dataset.json would differ)", "--overwrite")
    orphan.unlink()
    xml.unlink()  # one patient's boxes changed: its images are converted again
    one_line_error(run_cli(*args), "(inputs changed: 1 patients to convert again)")
    assert _snapshot(out) == before
    assert run_cli(*args, "--overwrite").exit_code == 0
    assert _snapshot(out)["dataset.json"] != before["dataset.json"]


def test_a_rerun_removes_only_files_detect_wrote(small_cohort, tmp_path):
    out = tmp_path / "ds"
    args = ["convert", small_cohort.dicom_root, small_cohort.annotation_root, out,
            "--workers", "1"]
    assert run_cli(*args).exit_code == 0
    extra = {out / "images" / "train" / "added-by-hand.png": b"x",
             out / "labels" / "val" / "added-by-hand.txt": b"y"}
    for path, data in extra.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    done = run_cli(*args, "--seed", "5", "--overwrite")
    assert done.exit_code == 0, done.output
    for path, data in extra.items():
        assert path.read_bytes() == data


_HOLD = """
import sys, time
from pathlib import Path
from detect.io.outlock import hold_out_lock
with hold_out_lock(Path(sys.argv[1]), shard=False, settings="other"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_a_second_convert_into_the_same_out_fails_at_once(small_cohort, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        one_line_error(
            run_cli("convert", small_cohort.dicom_root, small_cohort.annotation_root, out,
                    "--workers", "1"),
            f"{out} is being written by another detect convert (pid {holder.pid})",
        )
        assert not (out / "dataset.json").exists()
    finally:
        holder.kill()  # dies without releasing anything itself
        holder.wait(timeout=60)
    done = run_cli("convert", small_cohort.dicom_root, small_cohort.annotation_root, out,
                   "--workers", "1")
    assert done.exit_code == 0, done.output


def test_shards_with_the_same_options_share_out_but_not_with_other_options(tmp_path):
    from detect.io.outlock import OutBusy, hold_out_lock

    out = tmp_path / "ds"
    out.mkdir()
    with hold_out_lock(out, shard=True, settings="a"), hold_out_lock(out, shard=True,
                                                                      settings="a"):
        with pytest.raises(OutBusy, match="different options"), \
                hold_out_lock(out, shard=True, settings="b"):
            pass
        with pytest.raises(OutBusy, match="another detect convert"), \
                hold_out_lock(out, shard=False, settings="a"):
            pass
    with hold_out_lock(out, shard=False, settings="b"), pytest.raises(OutBusy), \
            hold_out_lock(out, shard=True, settings="b"):
        pass


class _Stop(Exception):
    pass


def test_a_rerun_with_another_recipe_never_leaves_a_mixed_dataset(small_cohort, tmp_path):
    out = tmp_path / "ds"
    roots = (small_cohort.dicom_root, small_cohort.annotation_root)
    from detect.recipe import parse_channels

    convert(ConvertConfig(*roots, out, workers=1))
    other = parse_channels("2.5d")

    def interrupt(stage: str, done: int, total: int) -> None:
        if stage == "images" and done == 3:
            raise _Stop

    with pytest.raises(_Stop):
        convert(ConvertConfig(*roots, out, recipe=other, workers=1, overwrite=True),
                progress=interrupt)
    # some PNGs are rendered with the new recipe now: no dataset.json may claim the old one
    if (out / "dataset.json").exists():
        manifest = json.loads((out / "dataset.json").read_text())
        assert manifest["recipe"] == other.to_dict()
    convert(ConvertConfig(*roots, out, recipe=other, workers=1))  # continues: no --overwrite
    fresh = tmp_path / "fresh"
    convert(ConvertConfig(*roots, fresh, recipe=other, workers=1))
    ours = {p.relative_to(out): p.read_bytes() for p in (out / "images").rglob("*.png")}
    clean = {p.relative_to(fresh): p.read_bytes() for p in (fresh / "images").rglob("*.png")}
    assert ours == clean
    assert json.loads((out / "dataset.json").read_text())["recipe"] == other.to_dict()


def test_links_planted_in_out_never_take_a_write_outside(small_cohort, tmp_path):
    out = tmp_path / "ds"
    args = ["convert", small_cohort.dicom_root, small_cohort.annotation_root, out,
            "--workers", "1"]
    assert run_cli(*args).exit_code == 0
    victim = tmp_path / "precious.txt"
    victim.write_text("precious")
    (out / ".lock").unlink()
    (out / ".lock").symlink_to(victim)
    one_line_error(run_cli(*args), "lock file", str(out / ".lock"))
    assert victim.read_text() == "precious"
    (out / ".lock").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(out / "images")
    (out / "images").symlink_to(elsewhere, target_is_directory=True)
    one_line_error(run_cli(*args, "--channels", "2.5d", "--overwrite"), "through a link")
    assert list(elsewhere.iterdir()) == []
