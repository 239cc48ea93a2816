"""The VideoQA KD figure: the teacher-student gap and the fraction of it KD closes, per seed."""

from __future__ import annotations

import statistics

import pytest

from vlkd.quickstart.videoqa import gap_closed


def test_gap_and_fraction_closed_per_seed() -> None:
    teacher, kd, alone = [60.0, 58.0, 64.0], [55.0, 50.0, 52.0], [50.0, 50.0, 48.0]
    g = gap_closed(teacher, kd, alone)
    assert g["gap"]["values"] == [10.0, 8.0, 16.0]
    assert g["kd_gain"]["values"] == [5.0, 0.0, 4.0]
    assert g["fraction_closed"]["values"] == [0.5, 0.0, 0.25]
    assert g["fraction_closed"]["mean"] == pytest.approx(0.25)
    pooled = ((statistics.stdev(teacher) ** 2 + statistics.stdev(alone) ** 2) / 2) ** 0.5
    assert g["pooled_std"] == pytest.approx(pooled)
    assert g["gap_over_pooled_std"] == pytest.approx(statistics.mean([10.0, 8.0, 16.0]) / pooled)


def test_a_seed_without_a_gap_has_no_fraction() -> None:
    g = gap_closed([50.0, 52.0], [51.0, 50.0], [50.0, 49.0])
    assert g["fraction_closed"]["values"] == [1 / 3]  # seed 0: no gap, no fraction; seed 1: 1 of 3
    assert gap_closed([50.0], [50.0], [50.0])["fraction_closed"] is None
