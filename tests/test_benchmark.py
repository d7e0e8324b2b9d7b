"""The CPU benchmark's smoke test: it runs, checks every output, and reports every goal.

Speed is never asserted here (that is the benchmark's job, side by side in one run); this
checks that ``make bench`` still measures what chapter 10 reads."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
cpu_softmax = pytest.importorskip("cpu_softmax")


def test_quick_benchmark_reports_every_goal_and_statistic(capsys):
    result = cpu_softmax.main(["--quick"])
    printed = capsys.readouterr().out
    assert set(result["met"]) == set(cpu_softmax.GOALS)
    for key in cpu_softmax.GOALS:           # every goal is printed with its verdict
        label = cpu_softmax.GOAL_LABELS[key][0].format(cpu_softmax.GOALS[key])
        assert label in printed
    for row in result["results"]:
        assert row["copy_gbs"] > 0 and row["exp_ns_per_entry"] > 0
        for name, v in row["impls"].items():
            q1, q3 = v["iqr_seconds"]
            assert v["min_seconds"] <= q1 <= v["median_seconds"] <= q3, name
            assert len(v["times"]) == result["settings"]["rounds"]
            assert np.isfinite(v["max_relative_error"]), name
    names = {n for r in result["ablation"] for n in r["impls"]}
    assert {"compiled, divide", "NumPy blocks, one shift per block",
            "compiled, three passes per row"} <= names
    assert [c["K"] for c in result["cost_vs_K"]] == [256, 4096]
    for row in result["results"]:       # the arithmetic alone, measured beside the copy
        assert {"np.exp, in cache", "compiled, in cache"} <= set(row["impls"])


def test_a_wrong_output_stops_the_benchmark():
    row = {"dtype": "float64", "shape": [2, 3],
           "impls": {"x": {"max_relative_error": 1e-3}}}
    with pytest.raises(AssertionError, match="differ from the float64 reference"):
        cpu_softmax.check_outputs(row)
