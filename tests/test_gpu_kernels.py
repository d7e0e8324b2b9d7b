"""The book's Triton softmax kernels (benchmarks/gpu_kernels.py), run on the CPU by Triton's
interpreter on small shapes. The speed measurement itself needs a GPU (benchmarks/gpu_softmax.py).
"""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ["TRITON_INTERPRET"] = "1"          # must be set before triton is imported
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from gpu_kernels import (  # noqa: E402
    NumpyTensor,
    choose_kernel,
    softmax_fused,
    softmax_online,
    softmax_split_row,
)

from softmaxbook import softmax  # noqa: E402


def run(kernel, x, **kwargs):
    y = np.zeros_like(x)
    if kernel == "split_row":
        n_work = x.shape[0] * (x.shape[1] // kwargs.get("chunk", 64) + 1)
        m, d = np.zeros(n_work, np.float32), np.zeros(n_work, np.float32)
        softmax_split_row(NumpyTensor(x), NumpyTensor(y), NumpyTensor(m), NumpyTensor(d), **kwargs)
    elif kernel == "online":
        softmax_online(NumpyTensor(x), NumpyTensor(y), **kwargs)
    else:
        softmax_fused(NumpyTensor(x), NumpyTensor(y), **kwargs)
    return y


CASES = [("fused", {}), ("online", {"block": 64}), ("split_row", {"chunk": 64, "block": 32})]


@pytest.mark.parametrize("kernel, kwargs", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("shape", [(3, 1), (4, 100), (2, 333)])
def test_kernels_match_float64_softmax(kernel, kwargs, shape):
    x = (4 * np.random.default_rng(0).standard_normal(shape)).astype(np.float32)
    got = run(kernel, x, **kwargs)
    np.testing.assert_allclose(got, softmax(x.astype(np.float64)), rtol=2e-6, atol=1e-30)


@pytest.mark.parametrize("kernel, kwargs", CASES, ids=[c[0] for c in CASES])
def test_kernels_float16_and_special_values(kernel, kwargs):
    x = np.random.default_rng(1).standard_normal((3, 70)).astype(np.float16)
    np.testing.assert_allclose(run(kernel, x, **kwargs).astype(np.float64), softmax(x.astype(np.float64)),
                               rtol=2e-3)
    z = np.zeros((2, 70), np.float32)
    z[0, :5] = -np.inf                       # -inf entries get probability 0
    z[1, 3] = 50.0                           # a dominant entry: no overflow
    got = run(kernel, z, **kwargs)
    np.testing.assert_allclose(got, softmax(z.astype(np.float64)), rtol=2e-6, atol=1e-30)


def test_a_wrong_kernel_would_be_caught():
    """The comparison above can fail: a kernel that forgot the max shift overflows."""
    x = np.full((1, 8), 100.0, np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.exp(x) / np.exp(x).sum()
    assert not np.allclose(naive, run("fused", x))


def test_launchers_check_their_arguments():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="differs from input shape"):
        softmax_fused(NumpyTensor(x), NumpyTensor(np.zeros((3, 2), np.float32)))
    with pytest.raises(ValueError, match="contiguous"):
        softmax_online(NumpyTensor(x), NumpyTensor(np.zeros((3, 2), np.float32).T))
    with pytest.raises(ValueError, match="too long for the fused kernel"):
        softmax_fused(NumpyTensor(np.zeros((1, 70_000), np.float32)), NumpyTensor(np.zeros((1, 70_000), np.float32)))


def test_kernel_choice_per_shape():
    assert choose_kernel(4096, 4096) == "fused"
    assert choose_kernel(16, 1_000_000) == "split_row"
    assert choose_kernel(32768, 32768) == "online"
