"""Counts of the cases the fault suite tried, printed at the end of the pytest run (tests/faults/conftest.py)."""

import collections

COUNTS = collections.Counter()


def add(what, count=1):
  """Adds `count` cases of kind `what` (e.g. "reader inputs", "kills survived")."""
  COUNTS[what] += count
