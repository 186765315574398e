"""Seed-paired statistics against hand-computed answers."""

import math

import pytest

from consistency import paired_stats


def test_paired_differences_keep_the_seed_order_and_the_gaps():
  assert paired_stats.paired_differences([0.5, None, 0.25], [0.25, 0.1, 0.5]) == [0.25, None, -0.25]
  with pytest.raises(ValueError, match="one value per seed"):
    paired_stats.paired_differences([0.5], [0.25, 0.1])


def test_t_interval_known_answer():
  # Values 1, 2, 3: mean 2, sample standard deviation 1, t(2) = 4.303 -> half width 4.303 / sqrt(3) = 2.4843.
  interval = paired_stats.t_interval([1.0, 2.0, 3.0])
  assert interval.mean == pytest.approx(2.0) and interval.count == 3
  assert interval.low == pytest.approx(2.0 - 4.303 / math.sqrt(3))
  assert interval.high == pytest.approx(2.0 + 2.4843, 1e-4)
  assert not interval.excludes_zero()
  assert paired_stats.t_interval([0.03, 0.04, None, 0.05]).excludes_zero()  # missing values are left out
  assert paired_stats.t_interval([-0.03, -0.04, -0.05]).excludes_zero()
  single = paired_stats.t_interval([0.02, None])
  assert (single.mean, single.low, single.high, single.count) == (0.02, None, None, 1)
  assert not single.excludes_zero() and single.format() == "+0.0200 (1 seed)"
  assert paired_stats.t_interval([None, None]) is None
  assert paired_stats.t_interval([0.1, 0.3]).format(2) == "+0.20 [-1.07, +1.47]"  # t(1) = 12.706, s = 0.1414


def test_t_critical_values():
  assert paired_stats.t_critical_95(1) == 12.706 and paired_stats.t_critical_95(30) == 2.042
  assert paired_stats.t_critical_95(200) == 1.96
  with pytest.raises(ValueError, match="degrees_of_freedom"):
    paired_stats.t_critical_95(0)


def test_fewer_labels_test_compares_each_fraction_with_four_times_the_labels():
  method = {0.005: [0.30, 0.32, 0.31], 0.01: [0.33, 0.35, None], 0.02: [0.40, 0.40, 0.40]}
  reference = {0.005: [0.2] * 3, 0.01: [0.25] * 3, 0.02: [0.305, 0.315, 0.31], 0.04: [0.36, 0.36, 0.36]}
  results = paired_stats.fewer_labels_test(method, reference)
  assert [r.fraction for r in results] == [0.005, 0.01]  # 0.02 x 4 = 0.08 is not in the grid
  first, second = results
  assert first.reference_mean == pytest.approx(0.31) and first.method_mean == pytest.approx(0.31) and first.reached
  assert second.method_mean == pytest.approx(0.34) and not second.reached
  assert second.format() == "1 % labels with consistency: 0.3400 mIoU; the baseline with 4 %: 0.3600 -> no (-0.0200)"
  assert paired_stats.fewer_labels_test({0.01: [None]}, {0.04: [0.3]}) == []
