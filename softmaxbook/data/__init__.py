"""Data the chapters read, shipped inside the package so that a chapter finds it from any folder
and outside the repository: the benchmark results of ``make bench`` (``cpu_softmax.json``) and,
where one has been measured, ``gpu_softmax.json``."""

from __future__ import annotations

import json
from importlib import resources

__all__ = ["benchmark_results"]


def benchmark_results(name="cpu_softmax"):
    """The benchmark results ``name`` (``"cpu_softmax"`` or ``"gpu_softmax"``) as a dict.

    Returns ``None`` when that benchmark has not been run and committed (the GPU one needs a
    machine with a GPU).

    Examples
    --------
    >>> from softmaxbook.data import benchmark_results
    >>> sorted(benchmark_results("cpu_softmax"))[:3]
    ['ablation', 'benchmark', 'cost_vs_K']
    >>> benchmark_results("no_such_benchmark") is None
    True
    """
    path = resources.files(__package__) / f"{name}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())
