"""Property-based tests (hypothesis): identities that must hold for every input."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from softmaxbook import log_softmax, logsumexp, softmax

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
any_finite = st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False)
logit_arrays = arrays(np.float64, array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=8), elements=finite)


@given(logit_arrays, st.integers(-3, 2))
def test_softmax_is_a_distribution(z, axis):
    axis = axis % z.ndim
    p = softmax(z, axis=axis)
    assert p.shape == z.shape
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p.sum(axis=axis), 1.0, rtol=0, atol=16 * np.finfo(float).eps)


@given(arrays(np.float64, st.integers(1, 20), elements=any_finite))
def test_softmax_is_a_distribution_even_for_huge_logits(z):
    p = softmax(z)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(), 1.0, atol=16 * np.finfo(float).eps)


@given(logit_arrays, st.floats(-1e3, 1e3))
def test_shift_invariance(z, c):
    np.testing.assert_allclose(softmax(z + c), softmax(z), rtol=1e-9, atol=1e-300)


@given(logit_arrays)
def test_order_is_preserved(z):
    p = softmax(z)
    a, b = z[..., :1], z[..., -1:]
    pa, pb = p[..., :1], p[..., -1:]
    assert np.all((a <= b) <= (pa <= pb))       # z_a <= z_b implies p_a <= p_b


@given(arrays(np.float64, st.integers(1, 30), elements=finite))
def test_logsumexp_bounds(z):
    lse, m = logsumexp(z), z.max()
    assert m <= lse <= m + np.log(z.size) + 1e-12 * max(1.0, abs(m))


@given(arrays(np.float64, st.integers(1, 30), elements=finite))
def test_log_softmax_is_z_minus_logsumexp(z):
    np.testing.assert_allclose(log_softmax(z), z - logsumexp(z), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.exp(log_softmax(z)), softmax(z), rtol=1e-12, atol=1e-300)


@given(arrays(np.float64, st.integers(2, 10), elements=st.floats(-30, 30)))
def test_softmax_is_gradient_of_logsumexp(z):
    h = 1e-6
    grad = np.array([(logsumexp(z + h * e) - logsumexp(z - h * e)) / (2 * h) for e in np.eye(z.size)])
    np.testing.assert_allclose(grad, softmax(z), atol=1e-8)


@given(arrays(np.float64, st.integers(1, 10), elements=finite), st.floats(1e-3, 1e3))
def test_temperature_equals_scaling(z, t):
    np.testing.assert_allclose(softmax(z, temperature=t), softmax(z / t), rtol=1e-12, atol=1e-300)


@given(arrays(st.sampled_from([np.float16, np.float32]), st.integers(1, 20),
              elements=st.floats(-50, 50, width=16)))
def test_low_precision_dtypes_are_kept_and_normalised(z):
    p = softmax(z)
    assert p.dtype == z.dtype
    np.testing.assert_allclose(p.astype(np.float64).sum(), 1.0, atol=z.size * np.finfo(z.dtype).eps)
