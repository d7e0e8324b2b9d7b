"""Unit and property tests of softmax_jacobian, softmax_jvp, cross_entropy, cross_entropy_grad.

Values are checked against independent computations: central finite differences
of the package's own softmax / loss, scipy.differentiate, and the explicit matrix.
Accuracy in eps against mpmath is in test_accuracy.py.
"""

import numpy as np
import pytest
import scipy.special as ss
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from scipy.differentiate import jacobian as scipy_jacobian

from softmaxbook import (
    cross_entropy,
    cross_entropy_grad,
    log_softmax,
    softmax,
    softmax_jacobian,
    softmax_jvp,
)

finite = st.floats(-30, 30, allow_nan=False, allow_infinity=False)
batches = arrays(np.float64, array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6), elements=finite)


def central_jacobian(f, z, h=1e-6):
    """d f(z)_i / d z_j by central differences, for one vector z."""
    z = np.asarray(z, dtype=float)
    cols = []
    for j in range(z.size):
        e = np.zeros_like(z)
        e[j] = h
        cols.append((f(z + e) - f(z - e)) / (2 * h))
    return np.stack(cols, axis=-1)


# --- softmax_jacobian -------------------------------------------------------------------------

def test_jacobian_formula_on_a_worked_example():
    s = softmax([1.0, 2.0, 3.0])
    expected = np.diag(s) - np.outer(s, s)
    np.testing.assert_allclose(softmax_jacobian([1.0, 2.0, 3.0]), expected, rtol=1e-14, atol=1e-17)


def test_jacobian_matches_finite_differences_and_scipy_differentiate():
    rng = np.random.default_rng(3)
    for z in [rng.normal(size=4), rng.normal(scale=5, size=7), np.array([10.0, -10.0, 0.0])]:
        J = softmax_jacobian(z)
        np.testing.assert_allclose(J, central_jacobian(softmax, z), rtol=1e-6, atol=1e-9)
        # scipy.differentiate wants f(x) with x of shape (K, ...) -> (K, ...)
        res = scipy_jacobian(lambda x: softmax(x, axis=0), z)
        np.testing.assert_allclose(J, res.df, rtol=1e-9, atol=1e-12)


def test_jacobian_a_wrong_formula_is_caught():
    """The check above must be able to fail: diag(s) + s s^T is not the Jacobian."""
    z = np.array([0.3, -1.2, 2.0])
    s = softmax(z)
    wrong = np.diag(s) + np.outer(s, s)
    assert not np.allclose(wrong, central_jacobian(softmax, z), rtol=1e-6, atol=1e-9)


@given(batches)
def test_jacobian_properties(z):
    J = softmax_jacobian(z)
    K = z.shape[-1]
    assert J.shape == z.shape + (K,)
    np.testing.assert_array_equal(J, np.swapaxes(J, -1, -2))
    np.testing.assert_allclose(J.sum(axis=-1), 0, atol=1e-15)
    eig = np.linalg.eigvalsh(J)
    assert np.all(eig >= -1e-15) and np.all(eig <= 0.5 + 1e-15)


def test_jacobian_norm_is_one_half_exactly_for_two_halves():
    J = softmax_jacobian([5.0, 5.0, -800.0])
    np.testing.assert_allclose(np.linalg.norm(J, 2), 0.5, rtol=1e-15)
    assert np.linalg.norm(softmax_jacobian([5.0, 4.0, 3.0]), 2) < 0.5


def test_jacobian_keeps_dtype_and_promotes_ints():
    for dt in [np.float16, np.float32, np.float64]:
        assert softmax_jacobian(np.zeros(3, dtype=dt)).dtype == dt
    assert softmax_jacobian([1, 2]).dtype == np.float64
    assert softmax_jacobian(np.zeros((2, 0))).shape == (2, 0, 0)


def test_jacobian_bad_input():
    with pytest.raises(TypeError, match="string"):
        softmax_jacobian("abc")
    with pytest.raises(TypeError, match="complex"):
        softmax_jacobian([1j, 2])
    with pytest.raises(np.exceptions.AxisError, match="0-d"):
        softmax_jacobian(3.0)


# --- softmax_jvp --------------------------------------------------------------------------------

@given(batches, st.integers(0, 2**32 - 1))
def test_jvp_equals_matrix_product(z, seed):
    v = np.random.default_rng(seed).normal(size=z.shape)
    expected = np.einsum("...ij,...j->...i", softmax_jacobian(z), v)
    np.testing.assert_allclose(softmax_jvp(z, v), expected, rtol=1e-10, atol=1e-13)


def test_jvp_broadcasts_one_vector_over_a_batch_and_kills_the_ones_direction():
    z = np.random.default_rng(4).normal(size=(5, 3))
    v = np.array([1.0, 0.0, -1.0])
    out = softmax_jvp(z, v)
    assert out.shape == (5, 3)
    np.testing.assert_allclose(out, softmax_jacobian(z) @ v, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(softmax_jvp(z, np.ones(3)), 0, atol=1e-16)


def test_jvp_keeps_relative_accuracy_at_a_dominant_class():
    """Every entry of J v within a few eps of its scale s_i (|v_i - v_t| + D),
    t the top class, measured against mpmath at 50 digits: the form
    s * (v - <s, v>) lost the top entry (2e-22 came out as 0) by cancelling
    v_t against a rounded <s, v> close to it."""
    import mpmath as mp

    mp.mp.dps = 50
    rng = np.random.default_rng(12)
    for k in (2, 3, 7):
        for gap in (5.0, 30.0, 50.0, 700.0):
            z = -gap * rng.uniform(0.5, 1.5, size=k)
            z[rng.integers(k)] = 0.0
            v = rng.normal(size=k)
            out = softmax_jvp(z, v)
            e = [mp.exp(mp.mpf(x)) for x in z]
            s = [x / mp.fsum(e) for x in e]
            # (J v)_i = s_i sum_j s_j (v_i - v_j), exact differences
            exact = np.array([float(s[i] * mp.fsum(
                s[j] * (mp.mpf(v[i]) - mp.mpf(v[j])) for j in range(k)))
                for i in range(k)])
            t = int(np.argmax(z))
            p = np.array([float(x) for x in s])
            scale = p * (np.abs(v - v[t]) + np.sum(p * np.abs(v - v[t])))
            assert np.all(np.abs(out - exact) <= 8 * np.finfo(float).eps
                          * scale + 1e-300), (k, gap, out, exact)
    np.testing.assert_allclose(softmax_jvp([50.0, 0.0], [1.0, 0.0]),
                               [1.9287498479639178e-22,
                                -1.9287498479639178e-22], rtol=1e-14)


def test_jvp_bad_input():
    with pytest.raises(ValueError, match="length K = 3"):
        softmax_jvp([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="do not broadcast"):
        softmax_jvp(np.zeros((2, 3)), np.zeros((4, 3)))
    with pytest.raises(TypeError, match="v must hold real"):
        softmax_jvp([1.0, 2.0], ["a", "b"])


# --- cross_entropy and its gradient -----------------------------------------------------------

def test_cross_entropy_worked_example_against_scipy():
    z = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.0], [0.0, 0.0, 3.0]])
    y = np.array([0, 1, 0])
    per_row = -ss.log_softmax(z, axis=-1)[np.arange(3), y]
    np.testing.assert_allclose(cross_entropy(z, y, reduction="none"), per_row, rtol=1e-15)
    np.testing.assert_allclose(cross_entropy(z, y), per_row.mean(), rtol=1e-15)
    np.testing.assert_allclose(cross_entropy(z, y, reduction="sum"), per_row.sum(), rtol=1e-15)


def test_cross_entropy_keeps_tiny_losses_that_log_of_softmax_loses():
    exact = np.log1p(np.exp(-40.0))
    assert np.log(softmax([40.0, 0.0]))[0] == 0.0          # the naive way loses it
    np.testing.assert_allclose(cross_entropy([40.0, 0.0], 0), exact, rtol=1e-15)
    np.testing.assert_allclose(cross_entropy_grad([40.0, 0.0], 0), [-exact, exact], rtol=1e-15)
    # and a huge loss does not overflow to inf
    np.testing.assert_allclose(cross_entropy([0.0, 1000.0], 0), 1000.0, rtol=1e-15)


@given(arrays(np.float64, array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
              elements=finite), st.integers(0, 2**32 - 1))
def test_gradient_is_softmax_minus_onehot_over_n_and_rows_sum_to_zero(z, seed):
    N, K = z.shape
    y = np.random.default_rng(seed).integers(0, K, size=N)
    g = cross_entropy_grad(z, y)
    np.testing.assert_allclose(g, (softmax(z) - np.eye(K)[y]) / N, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g.sum(axis=-1), 0, atol=1e-15)
    np.testing.assert_allclose(cross_entropy_grad(z, y, reduction="sum"), g * N, rtol=1e-15, atol=1e-300)


def test_gradient_matches_finite_differences_of_the_loss():
    rng = np.random.default_rng(5)
    z = rng.normal(scale=2, size=(4, 5))
    y = rng.integers(0, 5, size=4)
    h = 1e-6
    fd = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        e = np.zeros_like(z)
        e[idx] = h
        fd[idx] = (cross_entropy(z + e, y) - cross_entropy(z - e, y)) / (2 * h)
    np.testing.assert_allclose(cross_entropy_grad(z, y), fd, rtol=1e-6, atol=1e-10)


def test_loss_for_a_batch_with_extra_leading_axes():
    z = np.random.default_rng(6).normal(size=(2, 3, 4))
    y = np.array([[0, 1, 2], [3, 3, 0]])
    per = -np.take_along_axis(log_softmax(z), y[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(cross_entropy(z, y), per.mean(), rtol=1e-15)
    assert cross_entropy_grad(z, y).shape == z.shape


def test_loss_dtypes_and_special_values():
    for dt in [np.float16, np.float32, np.float64]:
        z = np.array([[1.0, 2.0]], dtype=dt)
        assert cross_entropy(z, [0]).dtype == dt
        assert cross_entropy_grad(z, [0]).dtype == dt
    assert cross_entropy([-np.inf, 0.0], 0) == np.inf
    assert np.isnan(cross_entropy([np.nan, 0.0], 1))
    assert cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=int), reduction="sum") == 0
    assert cross_entropy_grad(np.zeros((0, 3)), np.zeros(0, dtype=int)).shape == (0, 3)


@pytest.mark.parametrize("labels, exc, message", [
    ([0, 3], IndexError, "label 3 at position 1 is out of range for K = 3"),
    ([-1, 0], IndexError, "label -1 at position 0 .*negative labels are not allowed"),
    ([0.0, 1.0], TypeError, "integer class indices, got float64 .*astype"),
    ([True, False], TypeError, "got boolean labels"),
    ("01", TypeError, "string"),
    ([0, 1, 2], ValueError, r"labels have shape \(3,\).*labels of shape \(2,\)"),
    ([[0, 1]], ValueError, "labels of shape"),
])
def test_bad_labels_raise_clear_errors(labels, exc, message):
    z = np.zeros((2, 3))
    for f in (cross_entropy, cross_entropy_grad):
        with pytest.raises(exc, match=message):
            f(z, labels)


def test_other_bad_input():
    with pytest.raises(ValueError, match="reduction must be one of"):
        cross_entropy(np.zeros((2, 3)), [0, 1], reduction="avg")
    with pytest.raises(ValueError, match="reduction must be one of"):
        cross_entropy_grad(np.zeros((2, 3)), [0, 1], reduction="none")
    with pytest.raises(ValueError, match="zero examples"):
        cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match="0-d"):
        cross_entropy(1.0, 0)
    with pytest.raises(TypeError, match="logits must hold real"):
        cross_entropy(np.array([["a", "b"]]), [0])
    with pytest.raises(IndexError, match="K = 0"):
        cross_entropy(np.zeros((2, 0)), [0, 0])


def test_inputs_are_not_modified():
    z = np.array([[1.0, 2.0, 3.0]])
    y = np.array([2])
    z0, y0 = z.copy(), y.copy()
    cross_entropy(z, y), cross_entropy_grad(z, y), softmax_jacobian(z), softmax_jvp(z, z)
    np.testing.assert_array_equal(z, z0)
    np.testing.assert_array_equal(y, y0)
