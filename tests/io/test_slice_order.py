"""A 2.5d slice's neighbours: the next distinct position in its own acquisition."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from pathlib import Path

import pytest
from support.realdata import PATIENTS, real_patient

from detect.io.dicom import SliceHeader, read_header
from detect.io.slice_order import neighbour_indices, sort_slices

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def header(k: int, z: float | None, acquisition: int | None = None, **changes: object
           ) -> SliceHeader:
    base = SliceHeader(
        path=Path(f"{k}.dcm"), sop_instance_uid=f"1.2.{k:04d}", series_instance_uid="1.2.3",
        study_instance_uid="1.2", patient_id="Lung_Dx-A0001", modality="CT",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2", rows=512, columns=512,
        samples_per_pixel=1, photometric="MONOCHROME2", number_of_frames=1,
        instance_number=k, position=None if z is None else (-250.0, -200.0, z),
        orientation=AXIAL, series_description="", pixel_spacing=(0.7, 0.7),
        acquisition_number=acquisition)
    return replace(base, **changes)  # type: ignore[arg-type]


def by_path(slices: list[SliceHeader], offsets: tuple[int, ...]) -> dict[str, tuple[str, ...]]:
    """Neighbours keyed by file name, so the check does not depend on the sort's ties."""
    picks = neighbour_indices(slices, offsets)
    return {s.path.name: tuple(slices[j].path.name for j in picks[i])
            for i, s in enumerate(slices)}


def test_one_acquisition_is_plain_offsets_clamped_at_the_ends():
    slices = sort_slices([header(k, 5.0 * k) for k in range(5)])
    assert neighbour_indices(slices, (-1, 0, 1)) == [
        (0, 0, 1), (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 4)]
    assert neighbour_indices(slices, (-2, 0, 2))[2] == (0, 2, 4)


def test_interleaved_acquisitions_keep_to_their_own_stack():
    # three acquisitions of the same four positions (GE contrast phases), shuffled
    headers = [header(10 * a + k, 5.0 * k, acquisition=a) for a in (1, 2, 3) for k in range(4)]
    random.Random(0).shuffle(headers)
    slices = sort_slices(headers)
    got = by_path(slices, (-1, 0, 1))
    for a in (1, 2, 3):
        assert got[f"{10 * a + 1}.dcm"] == (f"{10 * a}.dcm", f"{10 * a + 1}.dcm",
                                             f"{10 * a + 2}.dcm")
        assert got[f"{10 * a}.dcm"] == (f"{10 * a}.dcm", f"{10 * a}.dcm", f"{10 * a + 1}.dcm")
        assert got[f"{10 * a + 3}.dcm"][2] == f"{10 * a + 3}.dcm"  # clamped in its stack


def test_an_acquisition_number_per_slice_does_not_split_the_series():
    # sequential (axial) scanning: every slice an acquisition of its own
    slices = sort_slices([header(k, 5.0 * k, acquisition=k + 1) for k in range(4)])
    assert neighbour_indices(slices, (-1, 0, 1))[1] == (0, 1, 2)
    # ... and with two reconstructions at each position: ranked, not split
    headers = [header(k + 100 * r, 5.0 * k, acquisition=k + 1 + 10 * r)
               for r in (0, 1) for k in range(3)]
    got = by_path(sort_slices(headers), (-1, 0, 1))
    assert got["1.dcm"] == ("0.dcm", "1.dcm", "2.dcm")
    assert got["101.dcm"] == ("100.dcm", "101.dcm", "102.dcm")


def test_repeats_without_acquisition_numbers_step_to_the_next_position():
    # two reconstructions at each position, no AcquisitionNumber: rank by InstanceNumber
    slices = sort_slices([header(k + 100 * r, 5.0 * k) for r in (0, 1) for k in range(3)])
    got = by_path(slices, (-1, 0, 1))
    assert got["1.dcm"] == ("0.dcm", "1.dcm", "2.dcm")
    assert got["101.dcm"] == ("100.dcm", "101.dcm", "102.dcm")


def test_an_acquisition_covering_part_of_the_range_clamps_at_its_own_ends():
    headers = [header(k, 5.0 * k, acquisition=1) for k in range(6)]
    headers += [header(20 + k, 5.0 * k, acquisition=2) for k in (2, 3)]
    got = by_path(sort_slices(headers), (-1, 0, 1))
    assert got["22.dcm"] == ("22.dcm", "22.dcm", "23.dcm")
    assert got["23.dcm"] == ("22.dcm", "23.dcm", "23.dcm")
    assert got["2.dcm"] == ("1.dcm", "2.dcm", "3.dcm")


def test_without_positions_the_order_is_the_instance_number():
    slices = sort_slices([header(k, None) for k in (3, 1, 2)])
    assert by_path(slices, (-1, 0, 1))["2.dcm"] == ("1.dcm", "2.dcm", "3.dcm")


@pytest.mark.parametrize(("spacing", "steps"), [(1.25, 4), (2.0, 2), (2.5, 2), (5.0, 1),
                                               (8.0, 1), (0.625, 8)])
def test_a_step_in_mm_picks_the_position_nearest_to_it(spacing: float, steps: int):
    # 2 mm: 4 and 6 mm are equally near 5 mm, the nearer slice wins
    slices = sort_slices([header(k, -300.0 + spacing * k) for k in range(40)])
    picks = neighbour_indices(slices, (-1, 0, 1), step_mm=5.0)
    assert picks[20] == (20 - steps, 20, 20 + steps)
    assert picks[0] == (0, 0, steps) and picks[39] == (39 - steps, 39, 39)
    assert picks[1][0] == 0  # fewer positions than the step below: the last one there


def test_a_step_in_mm_follows_uneven_gaps_and_stays_in_the_acquisition():
    z = [0.0, 1.0, 2.0, 7.0, 8.0, 13.0]
    headers = [header(k, v, acquisition=1) for k, v in enumerate(z)]
    headers += [header(10 + k, v, acquisition=2) for k, v in enumerate(z)]
    slices = sort_slices(headers)
    picks = neighbour_indices(slices, (-1, 0, 1), step_mm=5.0)
    place = {s.path.name: i for i, s in enumerate(slices)}

    def around(file: str) -> tuple[str, ...]:
        return tuple(slices[j].path.name for j in picks[place[file]])

    assert around("2.dcm") == ("0.dcm", "2.dcm", "3.dcm")  # 7 mm is the nearest to 2 + 5
    assert around("4.dcm") == ("2.dcm", "4.dcm", "5.dcm")  # 8 - 5 = 3: 2 mm, not 1 or 0 mm
    assert around("13.dcm") == ("12.dcm", "13.dcm", "15.dcm")  # acquisition 2 alike


@pytest.mark.parametrize("patient", PATIENTS)
def test_real_series_neighbours_are_one_slice_spacing_away(patient: str):
    folder = real_patient(patient)
    series: dict[str, list[SliceHeader]] = {}
    for path in sorted(folder.rglob("*.dcm")):
        one = read_header(path)
        series.setdefault(one.series_instance_uid, []).append(one)
    repeated = 0
    for headers in series.values():
        slices = sort_slices(headers)
        z = [s.position[2] for s in slices]  # type: ignore[index]
        gaps = sorted({round(b - a, 2) for a, b in itertools.pairwise(z)} - {0.0})
        spacing = gaps[0]
        repeated += len(set(z)) < len(z)
        plain = neighbour_indices(slices, (-1, 0, 1))
        # the shipped 2.5d model's 5 mm step stacks what one position does on 5-8 mm series
        assert neighbour_indices(slices, (-1, 0, 1), step_mm=5.0) == plain
        for i, (below, _, above) in enumerate(plain):
            for j in (below, above):
                gap = abs(z[j] - z[i])
                assert gap == pytest.approx(spacing, abs=0.01) or (
                    gap == 0 and j == i), (slices[i].path.name, j, gap)
                assert slices[j].acquisition_number == slices[i].acquisition_number
    # B0021 and E0003 each have a series of three contrast phases at every position
    assert repeated == (0 if patient == "A0002" else 1)
