import pytest

from detect.convert.split import fold_groups, fold_splits, split_patients


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


def test_named_patients_are_placed_and_the_rest_split_by_the_other_fractions():
    letters = _cohort()
    plan = split_patients(letters, (0.7, 0.15, 0.15), seed=0, test_patients=["A0001", "G0003"])
    assert plan.patients("test") == ["A0001", "G0003"]
    assert plan.placed == {"test": ["A0001", "G0003"]}
    rest = [p for p in letters if p not in ("A0001", "G0003")]
    assert {plan.assignment[p] for p in rest} == {"train", "val"}  # test takes no one else
    a_val = sum(1 for p, s in plan.assignment.items() if s == "val" and letters[p] == "A")
    assert a_val == round(39 * 0.15 / 0.85)
    assert plan.empty == {}


def test_both_named_leaves_the_others_in_train():
    letters = {"A0002": "A", "B0021": "B", "E0003": "E"}
    plan = split_patients(letters, (0.7, 0.15, 0.15), seed=0, val_patients=["B0021"],
                          test_patients=["A0002"])
    assert plan.assignment == {"A0002": "test", "B0021": "val", "E0003": "train"}
    assert plan.empty == {}


def test_every_empty_split_has_its_reason():
    letters = {"A0002": "A", "B0021": "B", "E0003": "E"}
    plan = split_patients(letters, (0.7, 0.15, 0.15), seed=0)
    assert set(plan.assignment.values()) == {"train"}
    assert set(plan.empty) == {"val", "test"}
    assert "no letter has enough patients" in plan.empty["val"]
    assert "A 1, B 1, E 1" in plan.empty["test"]
    zero = split_patients(_cohort(), (0.8, 0.0, 0.2), seed=0)
    assert zero.empty == {"val": "its --split fraction is 0"}
    named = split_patients(letters, (0.7, 0.15, 0.15), seed=0,
                           test_patients=["A0002", "B0021", "E0003"])
    assert named.empty["train"] == "every patient was named for another split"


def test_fold_groups_hold_every_patient_once_balanced_and_mixed():
    letters = _cohort(a=10, b=3, e=2, g=5)
    groups = fold_groups(letters, 4, seed=0)
    flat = [p for group in groups for p in group]
    assert sorted(flat) == sorted(letters)
    assert max(map(len, groups)) - min(map(len, groups)) <= 1
    for letter, count in (("A", 10), ("B", 3), ("G", 5)):
        per_group = [sum(1 for p in g if letters[p] == letter) for g in groups]
        assert max(per_group) - min(per_group) <= 1 and sum(per_group) == count
    assert fold_groups(dict(reversed(letters.items())), 4, seed=0) == groups
    assert fold_groups(letters, 4, seed=1) != groups


def test_fold_splits_test_each_group_once_and_keep_named_val_out_of_the_rotation():
    letters = _cohort(a=6, b=2, e=1, g=3)
    plans = fold_splits(letters, 3, (0.7, 0.15, 0.15), seed=0, val_patients=["G0001"])
    tested = [p for plan in plans for p in plan.patients("test")]
    assert sorted(tested) == sorted(p for p in letters if p != "G0001")
    for plan in plans:
        assert plan.assignment["G0001"] == "val"
        assert set(plan.assignment) == set(letters)
        assert not set(plan.patients("test")) & set(plan.patients("train"))
    with pytest.raises(ValueError):
        fold_splits({"A0001": "A", "B0001": "B"}, 3, (0.7, 0.15, 0.15), seed=0)


def test_leave_one_out_of_three_patients():
    letters = {"A0002": "A", "B0021": "B", "E0003": "E"}
    plans = fold_splits(letters, 3, (0.7, 0.15, 0.15), seed=0)
    assert sorted(p for plan in plans for p in plan.patients("test")) == sorted(letters)
    for plan in plans:
        assert len(plan.patients("train")) == 2 and "val" in plan.empty
