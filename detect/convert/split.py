"""Patient-level splits, stratified by histology letter, seeded and written down.

Per letter, the patients are sorted, shuffled with a generator seeded by (seed, letter),
and cut by the fractions with largest-remainder rounding. A letter with at least as many
patients as there are non-empty splits gets at least one patient in every one of them;
a rarer letter fills train first, then test, then val, and the note says so.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SPLIT_NAMES = ("train", "val", "test")
_RARE_ORDER = ("train", "test", "val")


@dataclass(frozen=True)
class SplitPlan:
    """Which split each patient is in, and what happened to each letter."""

    assignment: dict[str, str]
    notes: dict[str, str]

    def patients(self, split: str) -> list[str]:
        return sorted(p for p, s in self.assignment.items() if s == split)


def _allocate(count: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder rounding of ``count * fractions``, at least 1 per non-empty split."""
    active = [i for i, f in enumerate(fractions) if f > 0]
    raw = [count * f for f in fractions]
    sizes = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - sizes[i]), i))
    for i in order[: count - sum(sizes)]:
        sizes[i] += 1
    for i in active:  # give each non-empty split one patient, taken from the largest
        if sizes[i] == 0:
            donor = max(active, key=lambda j: sizes[j])
            sizes[donor] -= 1
            sizes[i] += 1
    return sizes


def split_patients(letters: Mapping[str, str], fractions: Sequence[float], seed: int) -> SplitPlan:
    """Assign every patient (ID → letter) to train/val/test.

    The same patients, fractions and seed always give the same split.
    """
    by_letter: dict[str, list[str]] = {}
    for patient, letter in letters.items():
        by_letter.setdefault(letter, []).append(patient)
    active = [name for name, f in zip(SPLIT_NAMES, fractions) if f > 0]
    assignment: dict[str, str] = {}
    notes: dict[str, str] = {}
    for letter in sorted(by_letter):
        patients = sorted(by_letter[letter])
        random.Random(f"{seed}:{letter}").shuffle(patients)
        if len(patients) >= len(active):
            sizes = _allocate(len(patients), fractions)
            start = 0
            for name, size in zip(SPLIT_NAMES, sizes):
                for patient in patients[start : start + size]:
                    assignment[patient] = name
                start += size
            notes[letter] = f"{len(patients)} patients: " + ", ".join(
                f"{name} {size}" for name, size in zip(SPLIT_NAMES, sizes)
            )
        else:
            order = [name for name in _RARE_ORDER if name in active]
            for patient, name in zip(patients, order):
                assignment[patient] = name
            used = order[: len(patients)]
            missing = [name for name in active if name not in used]
            notes[letter] = (
                f"only {len(patients)} patient(s), fewer than the {len(active)} splits: "
                f"in {', '.join(used)}; absent from {', '.join(missing)}"
            )
    return SplitPlan(assignment=assignment, notes=notes)
