import pytest

from detect.convert.split import split_patients


def _cohort(a=40, b=8, e=2, g=12):
    letters = {}
    for letter, n in (("A", a), ("B", b), ("E", e), ("G", g)):
        letters.update({f"{letter}{i:04d}": letter for i in range(1, n + 1)})
    return letters


def test_every_patient_in_exactly_one_split_and_stratified():
    letters = _cohort()
    plan = split_patients(letters, (0.7, 0.15, 0.15), seed=0)
    assert set(plan.assignment) == set(letters)
    for letter in "ABG":  # enough patients: present in every split
        splits = {plan.assignment[p] for p, lt in letters.items() if lt == letter}
        assert splits == {"train", "val", "test"}
    a_train = sum(1 for p, s in plan.assignment.items() if s == "train" and letters[p] == "A")
    assert a_train == 28  # 0.7 * 40
    assert "fewer than the 3 splits" in plan.notes["E"]
    assert {plan.assignment[p] for p in ("E0001", "E0002")} == {"train", "test"}


def test_same_seed_same_split_other_seed_differs():
    letters = _cohort()
    first = split_patients(letters, (0.7, 0.15, 0.15), seed=3).assignment
    assert split_patients(dict(reversed(letters.items())), (0.7, 0.15, 0.15), 3).assignment == first
    assert split_patients(letters, (0.7, 0.15, 0.15), seed=4).assignment != first


@pytest.mark.parametrize("n", [3, 4, 5, 7])
def test_small_letters_reach_every_split(n):
    plan = split_patients({f"E{i:04d}": "E" for i in range(n)}, (0.7, 0.15, 0.15), seed=0)
    assert set(plan.assignment.values()) == {"train", "val", "test"}
    assert list(plan.assignment.values()).count("train") >= n - 2


def test_empty_val_split_is_respected():
    plan = split_patients(_cohort(), (0.8, 0.0, 0.2), seed=0)
    assert "val" not in plan.assignment.values()
