"""What the hostile-input checks share: running any checkout's ``detect`` in a fresh
process, a phantom cohort made by that checkout, and one row of the table per case."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pydicom

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # support.hostile, support.idc_sr: pydicom only

PHANTOM_RUN = REPO / "weights" / "demo-yolov8n-phantom"
warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")  # planted values
#: The command line of a checkout, in this interpreter; ``MAXRSS`` reports peak memory.
CLI = ("import atexit, resource, sys; atexit.register(lambda: print('MAXRSS', "
       "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)); "
       "from detect.cli import main; sys.argv[0] = 'detect'; main()")


@dataclass
class Outcome:
    rc: int
    traceback: bool
    harm: bool
    note: str


class Runner:
    def __init__(self, checkout: Path, work: Path) -> None:
        self.checkout, self.work = checkout, work
        self.peak_mb = float("nan")

    def env(self) -> dict[str, str]:
        return dict(os.environ, PYTHONPATH=str(self.checkout), NO_COLOR="1", COLUMNS="200")

    def detect(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        """Run the checkout's ``detect``; its peak memory (MB) goes to ``self.peak_mb``."""
        done = subprocess.run([sys.executable, "-c", CLI, *map(str, args)], env=self.env(),
                              capture_output=True, text=True, errors="replace", cwd=self.work,
                              timeout=600)
        lines = done.stderr.splitlines()
        peaks = [int(line.split()[1]) / 1024 for line in lines if line.startswith("MAXRSS ")]
        self.peak_mb = peaks[-1] if peaks else float("nan")
        done.stderr = "\n".join(line for line in lines if not line.startswith("MAXRSS "))
        return done

    def start(self, *args: str | Path) -> subprocess.Popen[str]:
        """``detect`` in the background (a case that kills it)."""
        return subprocess.Popen([sys.executable, "-c", CLI, *map(str, args)], env=self.env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=self.work)

    def cohort(self, name: str, *extra: str, patients: int = 2) -> Path:
        out = self.work / name
        done = self.detect("synth", out, "--patients", str(patients), "--slices", "8",
                           "--size", "64", *extra)
        if done.returncode != 0:
            raise SystemExit(f"synth failed: {done.stderr[-400:]}")
        return out


def outcome(done: subprocess.CompletedProcess[str], harm: bool, note: str) -> Outcome:
    return Outcome(done.returncode, "Traceback" in done.stdout + done.stderr, harm, note)


def slices(cohort: Path) -> list[Path]:
    return sorted(p for p in (cohort / "Lung-PET-CT-Dx").rglob("*.dcm")
                  if pydicom.dcmread(p, stop_before_pixels=True).Modality == "CT")


def annotated(cohort: Path) -> list[Path]:
    xml = {p.stem for p in (cohort / "Annotation").rglob("*.xml")}
    return [p for p in slices(cohort)
            if str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) in xml]


def tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}




def children(pid: int) -> set[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    found: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            found.update(int(c) for c in
                         Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    except OSError:
        pass
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: only its parent, here init, may reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
