"""Hostile and broken inputs through the command line, against any checkout of detect.

Builds each case of issue 10 ("hostile and broken files") and of issue 21 (round 2:
silent wrong results, stale results, size lies and faults; ``tools/hostile_round2.py``)
from a small phantom made by the checkout's own ``detect synth``, runs the checkout's
``detect`` on it in a fresh process (``PYTHONPATH=<checkout>``, this virtual
environment's packages) and prints one row per case: exit code, whether a traceback was
printed, and whether the harm the case is about happened (a file outside OUT, code run
from a checkpoint, a user's file deleted, a formula cell, a slice silently converted, a
wrong score, a decoder run on a size lie, a stale file kept, a lock left held). Run it on
an old commit and on HEAD to see what changed; the unit tests of each case live under
tests/. The full-disk and read-only cases mount a small tmpfs (root with CAP_SYS_ADMIN);
elsewhere they are "not built".

usage: python tools/hostile_check.py [--checkout DIR] [--work DIR] [--only TEXT]
       git worktree add /tmp/old 0ab4c8e && python tools/hostile_check.py --checkout /tmp/old
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pydicom
import torch
from hostile_common import (
    PHANTOM_RUN,
    REPO,
    Outcome,
    Runner,
    annotated,
    outcome,
    slices,
    tree,
)
from hostile_round2 import ROUND2
from support.hostile import rewrite, write_rle_bomb  # pydicom-only builders


def case_patient_id_path(r: Runner) -> Outcome:
    c = r.cohort("c-path")
    for path in slices(c):
        rewrite(path, PatientID="../../escaped")
    before = tree(r.work)
    out = c / "deep" / "er" / "out"
    done = r.detect("convert", c / "Lung-PET-CT-Dx", c / "Annotation", out)
    outside = [p for p in tree(r.work) - before if out not in p.parents and p != out
               and p not in out.parents]
    return outcome(done, bool(outside), f"{len(outside)} new paths outside OUT")


def case_pickle(r: Runner) -> Outcome:
    c = r.cohort("c-pickle")
    run = r.work / "evil-run"
    shutil.copytree(PHANTOM_RUN, run)
    marker = r.work / "PICKLE-RAN"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (open, (str(marker), "w"))

    torch.save({"model": Evil()}, run / "weights" / "best.pt")
    done = r.detect("predict", c / "Lung-PET-CT-Dx", "--weights", run, "--out",
                    r.work / "p-pickle", "--device", "cpu")
    return outcome(done, marker.exists(), "code in best.pt ran" if marker.exists() else
                   "refused, nothing ran")


def case_user_files(r: Runner) -> Outcome:
    c = r.cohort("c-user")
    out = r.work / "users-folder"
    mine = [out / "images" / "train" / "mine.png", out / "labels" / "train" / "mine.txt",
            out / "dataset.json"]
    for path in mine:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("the user's own file")
    done = r.detect("convert", c / "Lung-PET-CT-Dx", c / "Annotation", out)
    lost = [p.name for p in mine if not p.is_file() or p.read_text() != "the user's own file"]
    return outcome(done, bool(lost), f"lost or overwritten: {', '.join(lost) or 'none'}")


def case_infinite_box(r: Runner) -> Outcome:
    c = r.cohort("c-inf")
    sop = pydicom.dcmread(annotated(c)[0], stop_before_pixels=True).SOPInstanceUID
    xml = next((c / "Annotation").rglob(f"{sop}.xml"))  # a CT slice's box, not a fused one's
    text = xml.read_text()
    start = text.index("<xmin>") + len("<xmin>")
    xml.write_text(text[:start] + "1e400" + text[text.index("</xmin>"):])
    out = r.work / "d-inf"
    done = r.detect("convert", c / "Lung-PET-CT-Dx", c / "Annotation", out)
    made = (out / "dataset.json").is_file()
    return outcome(done, not made, "dataset written" if made else "no dataset")


def case_rle_bomb(r: Runner) -> Outcome:
    c = r.cohort("c-bomb")
    like = annotated(c)[0]  # an annotated slice, replaced by the bomb (same SOP UID)
    write_rle_bomb(like, like, str(pydicom.dcmread(like).SOPInstanceUID))
    out = r.work / "d-bomb"
    done = r.detect("convert", c / "Lung-PET-CT-Dx", c / "Annotation", out)
    made = (out / "dataset.json").is_file()
    return outcome(done, not made, f"{like.stat().st_size // 1024} KB file declaring 60000^2; "
                   + ("dataset written" if made else "no dataset"))


def case_symlink_loop(r: Runner) -> Outcome:
    c = r.cohort("c-loop")
    series = slices(c)[0].parent
    (series / "loop-a.dcm").symlink_to(series / "loop-b.dcm")
    (series / "loop-b.dcm").symlink_to(series / "loop-a.dcm")
    done = r.detect("predict", series, "--weights", PHANTOM_RUN, "--out", r.work / "p-loop",
                    "--device", "cpu")
    return outcome(done, done.returncode != 0, "predicted" if done.returncode == 0 else
                   "no prediction")


def case_csv_formula(r: Runner) -> Outcome:
    c = r.cohort("c-csv")
    for path in slices(c):
        rewrite(path, PatientID="=HYPERLINK(\"http://x\")")
    out = r.work / "p-csv"
    done = r.detect("predict", c / "Lung-PET-CT-Dx", "--weights", PHANTOM_RUN, "--out", out,
                    "--device", "cpu")
    cells = [cell for p in out.glob("*.csv") for line in p.read_text().splitlines()
             for cell in line.split(",")]
    raw = [cell for cell in cells if cell.lstrip('"').startswith("=")]
    return outcome(done, bool(raw), f"{len(raw)} cells starting with '='")


def case_model_json(r: Runner) -> Outcome:
    c = r.cohort("c-json")
    run = r.work / "bad-json-run"
    shutil.copytree(PHANTOM_RUN, run)
    manifest = json.loads((run / "model.json").read_text())
    manifest["thresholds"]["conf"] = "high"
    (run / "model.json").write_text(json.dumps(manifest))
    done = r.detect("predict", c / "Lung-PET-CT-Dx", "--weights", run, "--out",
                    r.work / "p-json", "--device", "cpu")
    return outcome(done, False, (done.stdout + done.stderr).strip().splitlines()[-1][:90]
                   if (done.stdout + done.stderr).strip() else "")


def case_missing_rescale(r: Runner) -> Outcome:
    c = r.cohort("c-rescale")
    target = annotated(c)[0]
    sop = str(pydicom.dcmread(target, stop_before_pixels=True).SOPInstanceUID)
    rewrite(target, RescaleSlope=None, RescaleIntercept=None)
    out = r.work / "d-rescale"
    done = r.detect("convert", c / "Lung-PET-CT-Dx", c / "Annotation", out)
    issues = (json.loads((out / "dataset.json").read_text()).get("issues", [])
              if (out / "dataset.json").is_file() else [])
    reported = [i["kind"] for i in issues  # by the slice's file or by its annotation's
                if target.name in i.get("path", "") or sop in i.get("path", "")]
    return outcome(done, not reported, f"reported as {reported}" if reported else
                   "converted as if intercept were 0")


def case_symlinked_patients(r: Runner) -> Outcome:
    c = r.cohort("c-links")
    linked = r.work / "linked-root"
    linked.mkdir()
    for patient in (c / "Lung-PET-CT-Dx").iterdir():
        (linked / patient.name).symlink_to(patient)
    out = r.work / "d-links"
    done = r.detect("convert", linked, c / "Annotation", out)
    images = 0
    if (out / "dataset.json").is_file():
        counts = json.loads((out / "dataset.json").read_text()).get("counts", {})
        images = sum(v.get("images", 0) for v in counts.values() if isinstance(v, dict))
    silent = done.returncode == 0 and images == 0
    return outcome(done, silent, f"{images} images" + (", exit 0" if silent else ""))


CASES: dict[str, Callable[[Runner], Outcome]] = {
    "PatientID ../../escaped": case_patient_id_path,
    "crafted best.pt": case_pickle,
    "convert into the user's folder": case_user_files,
    "box coordinate 1e400": case_infinite_box,
    "RLE bomb 60000x60000": case_rle_bomb,
    "file symlink loop (predict)": case_symlink_loop,
    "PatientID =HYPERLINK(...)": case_csv_formula,
    "model.json conf 'high'": case_model_json,
    "CT slice without rescale": case_missing_rescale,
    "symlinked patient folders": case_symlinked_patients,
    **ROUND2,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=REPO)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--only", default="", help="run the cases whose name holds this")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="hostile-"))
    commit = subprocess.run(["git", "-C", str(args.checkout), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    print(f"detect at {commit} ({args.checkout}); work in {work}")
    print("| case | exit | traceback | harm | what happened |\n|---|---|---|---|---|")
    for name, case in CASES.items():
        if args.only not in name:
            continue
        folder = work / "".join(ch if ch.isalnum() else "_" for ch in name)
        folder.mkdir(parents=True)
        try:
            got = case(Runner(args.checkout.resolve(), folder.resolve()))
        except Exception as exc:  # a case that cannot be built on this checkout
            print(f"| {name} | - | - | - | not built: {exc!r:.80} |")
            continue
        print(f"| {name} | {got.rc} | {'yes' if got.traceback else 'no'} | "
              f"{'YES' if got.harm else 'no'} | {got.note} |", flush=True)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
