"""Patient-level splits, stratified by histology letter, seeded and written down.

Per letter, the patients are sorted, shuffled with a generator seeded by (seed, letter),
and cut by the fractions with largest-remainder rounding. A letter with at least as many
patients as there are non-empty splits gets at least one patient in every one of them;
a rarer letter fills train first, then test, then val, and the note says so.

Patients may also be placed by name (``--val-patients``, ``--test-patients``): they go to
that split, and the other patients are split by the fractions over the splits nobody
named (a named split takes no further patient). Every split left without a patient gets
a reason (:attr:`SplitPlan.empty`), which convert prints and writes into dataset.json.

Folds (``--folds K``): the patients not named for val are dealt into K groups, letter by
letter (each letter's patients shuffled with (seed, letter), dealt round-robin from where
the previous letter stopped), so groups differ in size by at most one and each letter is
spread over the groups. Fold k tests group k; its other patients are split into train and
val by the train and val fractions.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SPLIT_NAMES = ("train", "val", "test")
_RARE_ORDER = ("train", "test", "val")


@dataclass(frozen=True)
class SplitPlan:
    """Which split each patient is in, what happened to each letter, and why a split is
    empty (split → reason; only empty splits are listed)."""

    assignment: dict[str, str]
    notes: dict[str, str]
    empty: dict[str, str] = field(default_factory=dict)
    placed: dict[str, list[str]] = field(default_factory=dict)

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


def _by_fractions(letters: Mapping[str, str], fractions: Sequence[float], seed: int
                  ) -> tuple[dict[str, str], dict[str, str]]:
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
    return assignment, notes


def _empty_reasons(letters: Mapping[str, str], fractions: Sequence[float],
                   assignment: Mapping[str, str], placed: Mapping[str, Sequence[str]]
                   ) -> dict[str, str]:
    """Why each split without a patient has none (one sentence each)."""
    counts: dict[str, int] = {}
    for patient, letter in letters.items():
        if patient not in {p for names in placed.values() for p in names}:
            counts[letter] = counts.get(letter, 0) + 1
    per_letter = ", ".join(f"{letter} {n}" for letter, n in sorted(counts.items()))
    active = sum(1 for f in fractions if f > 0)
    reasons: dict[str, str] = {}
    for name, fraction in zip(SPLIT_NAMES, fractions):
        if name in assignment.values():
            continue
        if not letters:
            reasons[name] = "no patient to split"
        elif name in placed:
            reasons[name] = "the patients named for it are not in the dataset"
        elif fraction <= 0:
            named = " (the split of its named patients)" if placed else ""
            reasons[name] = f"its --split fraction is 0{named}"
        elif not counts:
            reasons[name] = "every patient was named for another split"
        else:
            order = "train first" if placed else "train, then test, then val"
            reasons[name] = (
                f"no letter has enough patients to reach it: {per_letter} patient(s) over "
                f"{active} splits, and a letter with fewer patients than splits fills {order}"
            )
    return reasons


def split_patients(letters: Mapping[str, str], fractions: Sequence[float], seed: int, *,
                   val_patients: Sequence[str] = (), test_patients: Sequence[str] = ()
                   ) -> SplitPlan:
    """Assign every patient (ID → letter) to train/val/test (module docstring).

    ``val_patients`` and ``test_patients`` are placed there; the rest are split by
    ``fractions`` over the splits without named patients. The same patients, fractions,
    names and seed always give the same split. Unknown names are ignored here (the caller
    checks them against the dataset's patients).
    """
    placed = {name: sorted(set(ids) & set(letters))
              for name, ids in (("val", val_patients), ("test", test_patients)) if ids}
    rest = {p: lt for p, lt in letters.items()
            if not any(p in ids for ids in placed.values())}
    shares = [0.0 if name in placed else f for name, f in zip(SPLIT_NAMES, fractions)]
    total = sum(shares)
    shares = [s / total for s in shares] if total > 0 else [1.0, 0.0, 0.0]
    assignment, notes = _by_fractions(rest, shares, seed)
    for name, ids in placed.items():
        assignment.update(dict.fromkeys(ids, name))
    return SplitPlan(assignment=assignment, notes=notes,
                     empty=_empty_reasons(letters, shares, assignment, placed),
                     placed=placed)


def fold_groups(letters: Mapping[str, str], folds: int, seed: int) -> list[list[str]]:
    """The patients dealt into ``folds`` groups (module docstring), each sorted."""
    groups: list[list[str]] = [[] for _ in range(folds)]
    turn = 0
    for letter in sorted(set(letters.values())):
        patients = sorted(p for p, lt in letters.items() if lt == letter)
        random.Random(f"{seed}:folds:{letter}").shuffle(patients)
        for patient in patients:
            groups[turn % folds].append(patient)
            turn += 1
    return [sorted(group) for group in groups]


def fold_splits(letters: Mapping[str, str], folds: int, fractions: Sequence[float], seed: int,
                *, val_patients: Sequence[str] = ()) -> list[SplitPlan]:
    """One :class:`SplitPlan` per fold (module docstring): fold k tests group k; the
    ``val_patients`` are val in every fold and in no group.

    Raises:
        ValueError: fewer patients to rotate than ``folds`` (the caller words the error).
    """
    rotating = {p: lt for p, lt in letters.items() if p not in set(val_patients)}
    if not 2 <= folds <= len(rotating):
        raise ValueError(f"{folds} folds need 2 to {len(rotating)} patients to rotate")
    train_val = (fractions[0], fractions[1], 0.0)
    return [split_patients(letters, train_val, seed, val_patients=val_patients,
                           test_patients=group)
            for group in fold_groups(rotating, folds, seed)]
