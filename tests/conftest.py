import os

from hypothesis import HealthCheck, settings

# Deterministic property tests: the same examples on every run and machine.
settings.register_profile(
    "book", derandomize=True, max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "book"))


import time
from pathlib import Path

_SESSION_START = time.time()
_REPORTS = Path(__file__).resolve().parents[1] / "_build" / "reports"


def pytest_terminal_summary(terminalreporter):
    """Print the accuracy tables that test_accuracy.py wrote during this run (xdist-safe)."""
    parts = sorted(p for p in _REPORTS.glob("accuracy_*.md") if p.stat().st_mtime >= _SESSION_START - 1)
    if not parts:
        return
    terminalreporter.write_sep("=", "maximum relative error in eps against mpmath (50 digits)")
    for p in parts:
        for line in p.read_text().splitlines():
            terminalreporter.write_line(line)
        terminalreporter.write_line("")
