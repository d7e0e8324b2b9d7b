"""Tests of fast_softmax and the online normalizer (chapter 10)."""

import numpy as np
import pytest
import scipy.special as ss
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from softmaxbook import (
    fast_softmax,
    merge_normalizers,
    online_normalizer,
    online_softmax,
    softmax,
)

finite = st.floats(-300, 300, allow_nan=False, allow_infinity=False)


def reference(z, axis=-1):
    return ss.softmax(np.asarray(z, dtype=np.float64), axis=axis)


# --- fast_softmax -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, rtol", [(np.float32, 5e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (300, 257), (3, 40_000), (2, 5, 9)])
def test_fast_softmax_matches_reference(dtype, rtol, shape):
    z = np.random.default_rng(0).normal(scale=4, size=shape).astype(dtype)
    got = fast_softmax(z)
    assert got.dtype == dtype and got.shape == z.shape
    np.testing.assert_allclose(got, reference(z), rtol=rtol, atol=1e-30)


def test_fast_softmax_blocks_with_a_wide_spread_use_per_row_shifts():
    z = np.zeros((64, 16), dtype=np.float32)
    z[0, 0] = 1e4        # row 0 is one-hot; the other rows uniform
    got = fast_softmax(z, block_bytes=1024)
    np.testing.assert_allclose(got[0], np.eye(16)[0])
    np.testing.assert_allclose(got[1:], 1 / 16, rtol=1e-6)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_fast_softmax_any_axis_and_out(axis):
    z = np.random.default_rng(1).normal(size=(6, 11))
    out = np.empty_like(z)
    assert fast_softmax(z, axis=axis, out=out) is out
    np.testing.assert_allclose(out, reference(z, axis=axis), rtol=1e-12)


def test_fast_softmax_in_place_and_dtype_promotion():
    z = np.random.default_rng(2).normal(size=(50, 20)).astype(np.float32)
    expected = reference(z)
    assert fast_softmax(z, out=z) is z
    np.testing.assert_allclose(z, expected, rtol=5e-6)
    assert fast_softmax(np.zeros(4, dtype=np.float16)).dtype == np.float32
    assert fast_softmax([1, 2, 3]).dtype == np.float64


def test_fast_softmax_special_values_follow_softmax():
    z = np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf], [np.nan, 0.0, 0.0], [np.inf, 0.0, 1.0]])
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(np.isnan(fast_softmax(z)), np.isnan(softmax(z)))
        np.testing.assert_allclose(fast_softmax(z)[0], softmax(z)[0], rtol=1e-12)


def test_fast_softmax_bad_out():
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match="shape"):
        fast_softmax(z, out=np.empty((3, 2)))
    with pytest.raises(ValueError, match="dtype"):
        fast_softmax(z, out=np.empty((2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="NumPy array"):
        fast_softmax(z, out=[[0.0] * 3] * 2)
    ro = np.empty((2, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fast_softmax(z, out=ro)
    f_order = np.empty((3, 2)).T            # any writeable layout is accepted
    np.testing.assert_allclose(fast_softmax(z, out=f_order), 1 / 3)
    with pytest.raises(TypeError, match="string"):
        fast_softmax("abc")


# --- online normalizer --------------------------------------------------------------------------

@given(arrays(np.float64, array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=40), elements=finite),
       st.integers(1, 50))
def test_online_softmax_equals_two_pass(z, block):
    np.testing.assert_allclose(online_softmax(z, block=block), softmax(z), rtol=1e-13, atol=1e-300)
    m, d = online_normalizer(z, block=block)
    np.testing.assert_array_equal(m[..., 0], z.max(axis=-1))
    np.testing.assert_allclose(d[..., 0], np.sum(np.exp(z - z.max(axis=-1, keepdims=True)), axis=-1), rtol=1e-13)


@given(st.lists(st.tuples(finite, st.floats(1e-3, 1e3)), min_size=3, max_size=3))
def test_merge_is_associative_and_commutative(parts):
    (m1, d1), (m2, d2), (m3, d3) = parts
    left = merge_normalizers(*merge_normalizers(m1, d1, m2, d2), m3, d3)
    right = merge_normalizers(m1, d1, *merge_normalizers(m2, d2, m3, d3))
    swapped = merge_normalizers(m2, d2, m1, d1)
    np.testing.assert_array_equal(left[0], right[0])
    np.testing.assert_allclose(left[1], right[1], rtol=1e-13)
    np.testing.assert_allclose(swapped[1], merge_normalizers(m1, d1, m2, d2)[1], rtol=1e-15)
    np.testing.assert_array_equal(merge_normalizers(-np.inf, 0.0, m1, d1), (m1, d1))


def test_split_row_merge_equals_whole_row():
    z = np.random.default_rng(3).normal(scale=30, size=10_000)
    pieces = np.array_split(z, 7)
    pairs = [online_normalizer(p) for p in pieces]
    m, d = pairs[0]
    for mp, dp in pairs[1:]:
        m, d = merge_normalizers(m, d, mp, dp)
    m_all, d_all = online_normalizer(z, block=10_000)
    np.testing.assert_array_equal(m, m_all)
    np.testing.assert_allclose(d, d_all, rtol=1e-13)


def test_online_special_values_and_dtypes():
    with np.errstate(all="ignore"):
        z = np.array([[-np.inf, -np.inf], [np.nan, 1.0], [np.inf, 1.0], [-np.inf, 2.0]])
        got = online_softmax(z, block=1)
    assert np.all(np.isnan(got[:3])) and np.array_equal(got[3], [0.0, 1.0])
    assert online_softmax(np.zeros(3, dtype=np.float32)).dtype == np.float32
    np.testing.assert_allclose(online_softmax(np.zeros((4, 2)), axis=0), 0.25)


@pytest.mark.parametrize("block", [0, -3, 2.5, True])
def test_online_bad_block(block):
    with pytest.raises(ValueError, match="block must be a positive integer"):
        online_softmax([1.0, 2.0], block=block)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 5e-5), (np.float64, 1e-12)])
def test_fast_softmax_long_rows_in_chunks(dtype, rtol):
    z = np.random.default_rng(5).normal(scale=5, size=(3, 5001)).astype(dtype)
    got = fast_softmax(z, block_bytes=1000)              # rows longer than a block
    np.testing.assert_allclose(got, reference(z), rtol=rtol, atol=1e-30)
    z[1, 7] = np.nan
    z[2, :] = -np.inf
    with np.errstate(all="ignore"):
        got = fast_softmax(z, block_bytes=1000)
    assert np.all(np.isnan(got[1:])) and np.all(np.isfinite(got[0]))
