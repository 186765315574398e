"""Prints how many cases the fault suite tried (inputs, kills) at the end of the run."""

from tests.faults import fault_count


def pytest_terminal_summary(terminalreporter):
  if fault_count.COUNTS:
    terminalreporter.write_sep("-", "fault suite")
    for what, count in sorted(fault_count.COUNTS.items()):
      terminalreporter.write_line(f"{what}: {count}")
