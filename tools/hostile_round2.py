"""The cases of issue 21 ("hostile input, round 2": silent wrong results, stale results,
size lies and faults) for tools/hostile_check.py. Each builds its input from a phantom
made by the checkout under test, runs that checkout's ``detect`` and says whether the
harm the case is about happened; the unit tests of each live under tests/."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
from hostile_common import (
    PHANTOM_RUN,
    Outcome,
    Runner,
    alive,
    annotated,
    children,
    outcome,
    slices,
)
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEG2000Lossless
from support.hostile import rewrite


def _convert(r: Runner, cohort: Path, out: Path, *extra: str | Path,
             annotations: Path | None = None) -> subprocess.CompletedProcess[str]:
    return r.detect("convert", cohort / "Lung-PET-CT-Dx", annotations or cohort / "Annotation",
                    out, "--workers", "1", *extra)


def _issues(out: Path) -> list[dict]:
    path = out / "dataset.json"
    return json.loads(path.read_text())["issues"] if path.is_file() else []


def _images(out: Path) -> dict[str, int]:
    """SOPInstanceUID → how many COCO images the dataset holds of it."""
    found: dict[str, int] = {}
    for coco in (out / "coco").glob("*.json") if (out / "coco").is_dir() else []:
        for image in json.loads(coco.read_text())["images"]:
            found[image["sop_instance_uid"]] = found.get(image["sop_instance_uid"], 0) + 1
    return found


def _patient_files(cohort: Path) -> list[Path]:
    first = sorted((cohort / "Lung-PET-CT-Dx").iterdir())[0]
    return [p for p in slices(cohort) if first in p.parents]


def case_slope(value: str) -> Callable[[Runner], Outcome]:
    def case(r: Runner) -> Outcome:
        c = r.cohort("c")
        for path in _patient_files(c):
            rewrite(path, RescaleSlope=value)
        out = r.work / "d"
        done = _convert(r, c, out)
        kinds = sorted({i["kind"] for i in _issues(out)} - {"fused-image"})
        bad = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
               for p in _patient_files(c)}
        used = len(bad & set(_images(out)))
        return outcome(done, used > 0, f"{used} images of the patient converted; issues "
                       f"{kinds}")
    return case


def case_slope_predict(r: Runner) -> Outcome:
    c = r.cohort("c")
    for path in _patient_files(c):
        rewrite(path, RescaleSlope="NaN")
    out = r.work / "p"
    done = r.detect("predict", c / "Lung-PET-CT-Dx", "--weights", PHANTOM_RUN, "--out", out,
                    "--device", "cpu", "--save", "json")
    rows = (out / "skipped.csv").read_text().count("implausible-value") \
        if (out / "skipped.csv").is_file() else 0
    read = len((out / "slices.csv").read_text().splitlines()) - 1 \
        if (out / "slices.csv").is_file() else 0
    return outcome(done, rows == 0, f"a patient's slices with slope NaN: {rows} "
                   f"implausible-value rows, {read} slices read")


def case_nan_orientation(r: Runner) -> Outcome:
    c = r.cohort("c", "--compression", "none")
    clean = r.work / "clean"
    _convert(r, c, clean, "--channels", "2.5d")
    series = annotated(c)[0].parent
    first = sorted(series.glob("*.dcm"))[0]
    rewrite(first, ImageOrientationPatient=["nan", "0", "0", "0", "1", "0"])
    out = r.work / "d"
    done = _convert(r, c, out, "--channels", "2.5d")
    moved = 0
    for split in ("train", "val", "test"):
        before = {i["sop_instance_uid"]: i["slice_index"] for i in json.loads(
            (clean / "coco" / f"{split}.json").read_text())["images"]}
        after = {i["sop_instance_uid"]: i["slice_index"] for i in json.loads(
            (out / "coco" / f"{split}.json").read_text())["images"]} \
            if (out / "coco").is_dir() else {}
        moved += sum(1 for uid, k in after.items() if before.get(uid, k) != k)
    reported = sum(1 for i in _issues(out) if i["kind"] == "implausible-value")
    return outcome(done, moved > 0, f"{moved} images at another place in their series; "
                   f"{reported} implausible-value issues")


def _perfect(r: Runner, clean: Path, other: Path) -> tuple[subprocess.CompletedProcess[str],
                                                             float | None]:
    """mAP50 on ``other`` (train split) of predictions equal to ``clean``'s boxes."""
    coco = json.loads((clean / "coco" / "train.json").read_text())
    images = {i["id"]: i for i in coco["images"]}
    records = []
    for ann in coco["annotations"]:
        image = images[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        records.append({"image_id": None, "category_id": ann["category_id"], "score": 1.0,
                        "bbox": [x, y, w, h], "xyxy": [x, y, x + w, y + h], "label": "",
                        "sop_instance_uid": image["sop_instance_uid"],
                        "series_instance_uid": image["series_instance_uid"],
                        "patient_id": image["patient_id"], "histology": None})
    path = r.work / "perfect.json"
    path.write_text(json.dumps(records))
    done = r.detect("eval", "--predictions", path, "--data", other, "--split", "train",
                    "--out", r.work / "eval", "--bootstrap", "0")
    metrics = r.work / "eval" / "metrics.json"
    score = json.loads(metrics.read_text())["detection"]["map50"] if metrics.is_file() else None
    return done, score


def case_copied_xml_folder(r: Runner) -> Outcome:
    c = r.cohort("c", patients=3)
    _convert(r, c, r.work / "clean")
    first = sorted(p for p in (c / "Annotation").iterdir() if p.is_dir())[0]
    shutil.copytree(first, c / "Annotation" / f"{first.name}-copy")
    done = _convert(r, c, r.work / "d")
    _, score = _perfect(r, r.work / "clean", r.work / "d")
    return outcome(done, score is None or score < 0.99,
                   f"a patient's XML folder copied: perfect predictions score mAP50 "
                   f"{_score(score)}")


def case_copied_sr(r: Runner) -> Outcome:
    from support.idc_sr import write_idc_srs_for

    c = r.cohort("c", patients=3)
    _convert(r, c, r.work / "clean")
    srs = r.work / "srs"
    write_idc_srs_for(c / "Lung-PET-CT-Dx", c / "Annotation", srs)
    for sr in sorted(srs.rglob("*.dcm")):
        shutil.copyfile(sr, sr.with_name(f"copy-{sr.name}"))
    done = _convert(r, c, r.work / "d", annotations=srs)
    _, score = _perfect(r, r.work / "clean", r.work / "d")
    return outcome(done, score is None or score < 0.99,
                   f"every SR copied: perfect predictions score mAP50 {_score(score)}")


def _score(score: float | None) -> str:
    return "none" if score is None else f"{score:.3f}"


def case_killed_predict(r: Runner) -> Outcome:
    c = r.cohort("c", "--compression", "none")
    patients = sorted((c / "Lung-PET-CT-Dx").iterdir())
    out = r.work / "p"
    args = ("--weights", PHANTOM_RUN, "--out", out, "--device", "cpu", "--save", "json,voc",
            "--conf", "0.001", "--batch", "1")
    first = r.start("predict", patients[0], *args)
    deadline = time.monotonic() + 300
    while first.poll() is None and time.monotonic() < deadline:
        if len(list(out.rglob("*.xml"))) >= 3:
            os.kill(first.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    first.wait()
    stale = len(list(out.rglob("*.xml")))
    done = r.detect("predict", patients[1], *args)
    xml = len(list(out.rglob("*.xml")))
    slices_csv = out / "slices.csv"
    findings = sum(1 for line in slices_csv.read_text().splitlines()[1:]
                   if line.split(",")[5] not in ("", "0")) if slices_csv.is_file() else 0
    return outcome(done, xml != findings, f"killed after {stale} VOC files; re-run on "
                   f"another patient: {xml} VOC files for {findings} slices with findings")


def _impostor(c: Path) -> str:
    """A slice of the first patient walked takes the UID of the last patient's annotated
    slice; returns that UID."""
    target = annotated(c)[-1]
    uid = str(pydicom.dcmread(target, stop_before_pixels=True).SOPInstanceUID)
    donor = _patient_files(c)[0]
    ds = pydicom.dcmread(donor)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.save_as(donor.with_name("0-impostor.dcm"), enforce_file_format=True)
    return uid


def case_uid_in_two_patients(r: Runner) -> Outcome:
    c = r.cohort("c", "--compression", "none")
    uid = _impostor(c)
    out = r.work / "d"
    done = _convert(r, c, out)
    used = _images(out).get(uid, 0)
    kinds = sorted({i["kind"] for i in _issues(out) if uid in i["detail"]})
    return outcome(done, used > 0, f"{used} image of the contested UID; issues {kinds}")


def case_sr_of_other_patient(r: Runner) -> Outcome:
    from support.idc_sr import write_idc_srs_for

    c = r.cohort("c")
    srs = r.work / "srs"
    written = write_idc_srs_for(c / "Lung-PET-CT-Dx", c / "Annotation", srs)
    ds = pydicom.dcmread(written[0])
    ds.PatientID = "Lung_Dx-G9999"
    ds.save_as(written[0], enforce_file_format=True)
    out = r.work / "d"
    done = _convert(r, c, out, annotations=srs)
    rel = str(written[0].relative_to(srs))
    used = 0
    for coco in (out / "coco").glob("*.json") if (out / "coco").is_dir() else []:
        used += sum(1 for i in json.loads(coco.read_text())["images"]
                    if rel in i.get("source_sr", []))
    kinds = sorted({i["kind"] for i in _issues(out) if i["path"] == rel})
    return outcome(done, used > 0, f"{used} images boxed by it; issues {kinds}")


def case_j2k_size_lie(side: int) -> Callable[[Runner], Outcome]:
    def case(r: Runner) -> Outcome:
        c = r.cohort("c", "--compression", "none")
        target = slices(c)[0]
        ds = pydicom.dcmread(target)
        ds.compress(JPEG2000Lossless, generate_instance_uid=False)
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        big = struct.pack(">II", side, side)  # image and tile size in SIZ
        ds.PixelData = encapsulate([frame[:8] + big + frame[16:24] + big + frame[32:]])
        ds.save_as(target, enforce_file_format=True)
        out = r.work / "p"
        start = time.monotonic()
        done = r.detect("predict", target.parent, "--weights", PHANTOM_RUN, "--out", out,
                        "--device", "cpu", "--save", "json", "--workers", "1")
        seconds, peak = time.monotonic() - start, r.peak_mb
        skipped = (out / "skipped.csv").read_text() if (out / "skipped.csv").is_file() else ""
        refused = "image-too-large" in skipped
        return outcome(done, not refused, f"{target.stat().st_size // 1024} kB slice listed "
                       f"as 64x64 declaring {side}x{side}: predict peak {peak:.0f} MB, "
                       f"{seconds:.0f} s; {'image-too-large' if refused else 'decoded'}")
    return case


def case_killed_convert(r: Runner) -> Outcome:
    c = r.cohort("c", patients=6)
    out = r.work / "d"
    parent = r.start("convert", c / "Lung-PET-CT-Dx", c / "Annotation", out, "--workers", "2")
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    while not workers and parent.poll() is None and time.monotonic() < deadline:
        workers = children(parent.pid)
        time.sleep(0.002)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    time.sleep(3)
    left = [pid for pid in workers if alive(pid)]
    done = _convert(r, c, out)
    for pid in left:  # started by this case: never leave them behind
        os.kill(pid, signal.SIGKILL)
    return outcome(done, done.returncode != 0, f"{len(workers)} workers, {len(left)} alive "
                   f"3 s after kill -9; re-run exit {done.returncode}")


def case_neighbour_size(r: Runner) -> Outcome:
    c = r.cohort("c", "--compression", "none")
    target = annotated(c)[0]
    others = sorted(p for p in target.parent.glob("*.dcm") if p != target)
    for path in others:  # every other slice of the series: a neighbour is among them
        ds = pydicom.dcmread(path)
        ds.Rows = ds.Columns = 32
        ds.PixelData = bytes(32 * 32 * 2)
        ds.save_as(path, enforce_file_format=True)
    out = r.work / "d"
    done = _convert(r, c, out, "--channels", "2.5d")
    kinds = sorted({i["kind"] for i in _issues(out)} - {"fused-image"})
    return outcome(done, done.returncode != 0, f"issues {kinds}")


def case_non_utf8_folder(r: Runner) -> Outcome:
    c = r.cohort("c")
    series = slices(c)[0].parent
    renamed = Path(os.fsdecode(bytes(series.parent) + b"/scan\xff\xfe"))
    series.rename(renamed)
    out = r.work / "p"
    done = r.detect("predict", renamed, "--weights", PHANTOM_RUN, "--out", out,
                    "--device", "cpu", "--save", "json,sr", "--conf", "0.001")
    written = [n for n in ("slices.csv", "skipped.csv") if (out / n).is_file()]
    srs = len(list((out / "sr").rglob("*.dcm"))) if (out / "sr").is_dir() else 0
    return outcome(done, len(written) < 2, f"written: {', '.join(written) or 'no CSV'}, "
                   f"{srs} SR")


@contextmanager
def _small_disk(where: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    where.mkdir(parents=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        raise RuntimeError(f"cannot mount a tmpfs here ({mount.stderr.strip()[:60]})")
    try:
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def case_disk(command: str, *, read_only: bool) -> Callable[[Runner], Outcome]:
    def case(r: Runner) -> Outcome:
        c = r.cohort("c", patients=3) if command == "convert" else None
        with _small_disk(r.work / "disk", "60k", read_only=read_only) as disk:
            if command == "convert" and c is not None:
                done = _convert(r, c, disk / "d")
            else:
                done = r.detect("synth", disk / "cohort", "--patients", "2", "--slices", "8",
                                "--size", "64")
        traceback = "Traceback" in done.stdout + done.stderr
        return Outcome(done.returncode, traceback, traceback or done.returncode == 0,
                       _last_line(done)[:90])
    return case


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def case_eval_record(change: Callable[[dict], object], what: str
                     ) -> Callable[[Runner], Outcome]:
    def case(r: Runner) -> Outcome:
        c = r.cohort("c", patients=3)
        data = r.work / "d"
        _convert(r, c, data)
        coco = json.loads((data / "coco" / "train.json").read_text())
        image, ann = coco["images"][0], coco["annotations"][0]
        x, y, w, h = ann["bbox"]
        good = {"image_id": None, "category_id": ann["category_id"], "score": 0.9,
                "bbox": [x, y, w, h], "xyxy": [x, y, x + w, y + h], "label": "",
                "sop_instance_uid": image["sop_instance_uid"],
                "series_instance_uid": image["series_instance_uid"],
                "patient_id": image["patient_id"], "histology": None}
        path = r.work / "preds.json"
        path.write_text(json.dumps([good, change(dict(good))]))
        done = r.detect("eval", "--predictions", path, "--data", data, "--split", "train",
                        "--out", r.work / "eval", "--bootstrap", "0")
        silent = done.returncode == 0
        harm = silent or "Traceback" in done.stdout + done.stderr
        line = _last_line(done)
        said = line[line.find("record 1"):] if "record 1" in line else line[-70:]
        return outcome(done, harm, f"{what}: " + ("scored silently" if silent else
                                                    said[:90]))
    return case


ROUND2: dict[str, Callable[[Runner], Outcome]] = {
    "1 RescaleSlope 0 (convert)": case_slope("0"),
    "1 RescaleSlope -1 (convert)": case_slope("-1"),
    "1 RescaleSlope 1e308 (convert)": case_slope("1e308"),
    "1 RescaleSlope NaN (predict)": case_slope_predict,
    "2 copied XML folder (convert+eval)": case_copied_xml_folder,
    "2 every SR copied (convert+eval)": case_copied_sr,
    "3 kill -9 predict, re-run": case_killed_predict,
    "4 one UID in two patients": case_uid_in_two_patients,
    "5 SR of another patient": case_sr_of_other_patient,
    "6 J2K 64x64 declaring 12000^2 (predict)": case_j2k_size_lie(12000),
    "7 kill -9 convert --workers 2": case_killed_convert,
    "8 2.5d neighbour of another size": case_neighbour_size,
    "8 NaN orientation, 2.5d order": case_nan_orientation,
    "9 non-UTF-8 folder name (predict)": case_non_utf8_folder,
    "10 full disk (convert)": case_disk("convert", read_only=False),
    "10 read-only OUT (convert)": case_disk("convert", read_only=True),
    "10 full disk (synth)": case_disk("synth", read_only=False),
    "10 read-only OUT (synth)": case_disk("synth", read_only=True),
    "11 eval record [1,2]": case_eval_record(lambda g: [1, 2], "record [1, 2]"),
    "11 eval histology a list": case_eval_record(
        lambda g: {**g, "histology": [0.7, 0.1, 0.1, 0.1]}, "histology list"),
    "13 eval reversed box": case_eval_record(
        lambda g: {**g, "xyxy": [g["xyxy"][2], g["xyxy"][1], g["xyxy"][0], g["xyxy"][3]]},
        "x2 < x1"),
    "13 eval unknown category_id": case_eval_record(
        lambda g: {**g, "category_id": 9}, "category_id 9"),
    "13 eval NaN histology": case_eval_record(
        lambda g: {**g, "histology": {"A": "nan", "B": 0.1, "E": 0.1, "G": 0.1}}, "NaN"),
}
