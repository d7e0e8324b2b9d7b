"""Repository-wide pytest hooks.

Reports how long each notebook took to execute under nbval (the sum of its
cells' run times), so that `make test` shows every chapter's execution time
next to the budget of DESIGN.md section 5.
"""

from collections import defaultdict

import pytest

NOTEBOOK_BUDGET_S = 15.0
TOTAL_BUDGET_S = 120.0
_durations = defaultdict(float)
_failed = set()


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        _durations[path] += report.duration
        if report.failed:
            _failed.add(path)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
    if not _durations:
        return
    tr = terminalreporter
    tr.write_sep("=", "notebook execution times (nbval)")
    total = 0.0
    for path in sorted(_durations):
        t = _durations[path]
        total += t
        flag = "FAILED" if path in _failed else ("OVER BUDGET" if t > NOTEBOOK_BUDGET_S else "ok")
        tr.write_line(f"{t:7.2f} s  {flag:<11}  {path}")
    flag = "OVER BUDGET" if total > TOTAL_BUDGET_S else "ok"
    tr.write_line(f"{total:7.2f} s  {flag:<11}  all {len(_durations)} notebooks "
                  f"(budget {NOTEBOOK_BUDGET_S:g} s each, {TOTAL_BUDGET_S:g} s in all)")
