"""Statistics of seed-paired comparisons: per-seed differences, Student-t intervals, the "fewer labels" test.

A consistency run and its control continue the same baseline with the same seed, so their difference per seed
removes what the seed does to both; the mean of those differences over seeds, with a 95 % interval from Student's t
over the seeds, says whether the loss helps. With one seed there is no interval (None).
"""

import dataclasses
import math

# Two-sided 95 % critical values of Student's t for 1..30 degrees of freedom; beyond 30 the normal's 1.96 is within
# 2 % of them.
_T_95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_NORMAL_95 = 1.960


@dataclasses.dataclass(frozen=True)
class Interval:
  """The mean of `count` values and its two-sided 95 % interval (low, high; None with fewer than 2 values)."""
  mean: float
  low: float | None
  high: float | None
  count: int

  def excludes_zero(self):
    """Whether the interval lies entirely above or entirely below 0 (False without an interval)."""
    return self.low is not None and (self.low > 0.0 or self.high < 0.0)

  def format(self, digits=4):
    if self.count == 1:
      return f"{self.mean:+.{digits}f} (1 seed)"
    return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def t_critical_95(degrees_of_freedom):
  """The two-sided 95 % critical value of Student's t."""
  if degrees_of_freedom < 1:
    raise ValueError(f"degrees_of_freedom must be >= 1. Received: {degrees_of_freedom}")
  return _T_95[degrees_of_freedom - 1] if degrees_of_freedom <= len(_T_95) else _NORMAL_95


def paired_differences(treatment, control):
  """Per seed, treatment - control; None where either value is missing (a run not made). Both lists by seed."""
  if len(treatment) != len(control):
    raise ValueError(f"Paired values need one value per seed on both sides. Received: {len(treatment)} and "
                     f"{len(control)} values")
  return [None if a is None or b is None else a - b for a, b in zip(treatment, control)]


def t_interval(values):
  """`Interval` of the values that exist (None = missing); None if none exists.

  mean +- t(n - 1) * s / sqrt(n), with s the sample standard deviation (n - 1 in the denominator).
  """
  values = [float(v) for v in values if v is not None]
  if not values:
    return None
  count = len(values)
  mean = sum(values) / count
  if count == 1:
    return Interval(mean, None, None, 1)
  deviation = math.sqrt(sum((v - mean) ** 2 for v in values) / (count - 1))
  half_width = t_critical_95(count - 1) * deviation / math.sqrt(count)
  return Interval(mean, mean - half_width, mean + half_width, count)


@dataclasses.dataclass(frozen=True)
class FewerLabels:
  """Whether `method` with `fraction` of the labels reaches `reference` with `factor` x as many (mean over seeds)."""
  fraction: float
  factor: float
  method_mean: float
  reference_mean: float

  @property
  def reached(self):
    return self.method_mean >= self.reference_mean

  def format(self):
    answer = "yes" if self.reached else "no"
    return (f"{self.fraction * 100:g} % labels with consistency: {self.method_mean:.4f} mIoU; the baseline with "
            f"{self.fraction * self.factor * 100:g} %: {self.reference_mean:.4f} -> {answer} "
            f"({self.method_mean - self.reference_mean:+.4f})")


def fewer_labels_test(method_by_fraction, reference_by_fraction, factor=4.0):
  """Pasad et al.'s "N x fewer labels" claim, per fraction f: does the method at f reach the reference at factor f?

  Args:
    method_by_fraction: {fraction: [value per seed, None where missing]} of the method (consistency runs).
    reference_by_fraction: the same for the reference (the supervised baseline).
    factor: how many times more labels the reference has.

  Returns:
    [FewerLabels] for every fraction f whose factor x f is also a fraction of the reference and where both sides
    have at least one value, in increasing f.
  """
  results = []
  for fraction in sorted(method_by_fraction):
    larger = [f for f in reference_by_fraction if math.isclose(f, fraction * factor, rel_tol=1e-6)]
    if not larger:
      continue
    method, reference = t_interval(method_by_fraction[fraction]), t_interval(reference_by_fraction[larger[0]])
    if method is not None and reference is not None:
      results.append(FewerLabels(fraction, factor, method.mean, reference.mean))
  return results
