"""Attention (chapter 11): the dense reference against a loop over rows with SciPy, the tiled
forward and backward against the dense one and against finite differences, masks, fully
masked rows, broadcasting, dtypes, bad input, untouched input, independent rows, memory."""

import tracemalloc

import numpy as np
import pytest
from scipy.special import logsumexp as sp_logsumexp
from scipy.special import softmax as sp_softmax

from softmaxbook import attention, flash_attention, flash_attention_backward
from softmaxbook.jacobian import softmax_jacobian

EPS = np.finfo(np.float64).eps


def rand(rng, *shape, scale=1.0):
    return rng.normal(0.0, scale, shape)


def naive_attention(q, k, v, allowed, scale):
    """Row by row, with SciPy's softmax over the allowed keys only (an independent route)."""
    n, e = q.shape[0], v.shape[1]
    out = np.zeros((n, e))
    for i in range(n):
        keys = np.flatnonzero(allowed[i])
        if keys.size:
            s = scale * np.array([q[i] @ k[j] for j in keys])
            out[i] = sp_softmax(s) @ v[keys]
    return out


def dense_backward(q, k, v, d_out, allowed, scale):
    """dq, dk, dv through each row's softmax Jacobian (chapter 3), an independent route."""
    s = scale * q @ k.T
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    for i in range(q.shape[0]):
        keys = np.flatnonzero(allowed[i])
        if not keys.size:
            continue
        p = sp_softmax(s[i, keys])
        dv[keys] += np.outer(p, d_out[i])
        dp = v[keys] @ d_out[i]
        ds = softmax_jacobian(s[i, keys]).T @ dp
        dq[i] += scale * ds @ k[keys]
        dk[keys] += scale * np.outer(ds, q[i])
    return dq, dk, dv


def tol(v):
    """Absolute tolerance for outputs of size |v| computed in float64."""
    return 64 * EPS * max(1.0, float(np.max(np.abs(v))))


@pytest.mark.parametrize("n,m,d,e", [(1, 1, 1, 1), (5, 9, 3, 2), (17, 4, 8, 5)])
@pytest.mark.parametrize("causal", [False, True])
def test_dense_attention_matches_rows_with_scipy(n, m, d, e, causal):
    rng = np.random.default_rng(n * 100 + m)
    q, k, v = rand(rng, n, d), rand(rng, m, d), rand(rng, m, e)
    mask = rng.random((n, m)) < 0.7
    allowed = mask & (np.arange(m)[None, :] <= np.arange(n)[:, None]) if causal else mask
    got = attention(q, k, v, mask=mask, causal=causal)
    want = naive_attention(q, k, v, allowed, 1 / np.sqrt(d))
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=tol(v))
    np.testing.assert_allclose(attention(q, k, v, scale=0.3),
                               naive_attention(q, k, v, np.ones((n, m), bool), 0.3),
                               rtol=1e-13, atol=tol(v))


def test_fully_masked_rows_give_zeros_and_no_gradient():
    rng = np.random.default_rng(1)
    q, k, v = rand(rng, 4, 3), rand(rng, 6, 3), rand(rng, 6, 2)
    mask = np.ones((4, 6), bool)
    mask[2] = False
    out = attention(q, k, v, mask=mask)
    assert np.all(out[2] == 0) and np.all(np.isfinite(out))
    np.testing.assert_allclose(out[[0, 1, 3]], attention(q[[0, 1, 3]], k, v), rtol=1e-15)
    # no keys at all: every row is fully masked
    o0, l0 = flash_attention(q, k[:0], v[:0])
    assert o0.shape == (4, 2) and np.all(o0 == 0) and np.all(l0 == -np.inf)
    assert np.all(attention(q, k[:0], v[:0]) == 0)
    # a row with lse = -inf (no key) contributes nothing to the gradients
    out, lse = flash_attention(q, k, v)
    out[2], lse[2] = 0.0, -np.inf
    g = rand(rng, 4, 2)
    dq, dk, dv = flash_attention_backward(q, k, v, out, lse, g, block=4)
    allowed = mask
    want = dense_backward(q, k, v, g, allowed, 1 / np.sqrt(3))
    assert np.all(dq[2] == 0)
    for got, ref in zip((dq, dk, dv), want):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13)


def test_mask_conventions_differ_as_the_chapter_says():
    """-inf alone gives NaN, a large negative number a uniform row; the package gives zeros."""
    s = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    mask = np.array([[True, True, False], [False, False, False]])
    with np.errstate(invalid="ignore"):
        assert np.all(np.isnan(sp_softmax(np.where(mask, s, -np.inf), axis=1)[1]))
    np.testing.assert_allclose(sp_softmax(np.where(mask, s, -1e9), axis=1)[1], 1 / 3)
    with np.errstate(over="ignore"):
        big = np.float16(-1e6)
    assert big == -np.inf          # so in float16 the "large finite negative" is -inf again
    q = np.eye(2, 3)
    assert np.all(attention(q, np.eye(3), np.eye(3), mask=mask)[1] == 0)


@pytest.mark.parametrize("block", [1, 3, 7, 128])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n,m", [(1, 1), (10, 10), (13, 29), (29, 13), (64, 64)])
def test_tiled_equals_dense(block, causal, n, m):
    rng = np.random.default_rng(block * 1000 + n * 10 + m)
    d, e = 6, 3
    q, k, v = rand(rng, 2, n, d), rand(rng, 2, m, d), rand(rng, 2, m, e)
    out, lse = flash_attention(q, k, v, causal=causal, block=block)
    np.testing.assert_allclose(out, attention(q, k, v, causal=causal), rtol=1e-13,
                               atol=tol(v))
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(d)
    if causal:
        s = np.where(np.arange(m)[None, :] <= np.arange(n)[:, None], s, -np.inf)
    np.testing.assert_allclose(lse, sp_logsumexp(s, axis=-1), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("case", ["huge logits", "one dominant key", "ties", "tiny values",
                                  "cancelling values"])
def test_tiled_equals_dense_on_adversarial_inputs(case):
    rng = np.random.default_rng(7)
    n, m, d, e = 40, 50, 8, 4
    q, k, v = rand(rng, n, d), rand(rng, m, d), rand(rng, m, e)
    if case == "huge logits":          # scores of order 1e6: exp overflows without the shift
        q *= 1e3
        k *= 1e3
    elif case == "one dominant key":   # the dominant key sits in the last block
        k[-1] = 50 * q.mean(axis=0)
    elif case == "ties":
        k[:] = k[0]
    elif case == "tiny values":
        v *= 1e-300
    elif case == "cancelling values":  # outputs far smaller than the values
        v = np.concatenate([v, -v])[:m] * 1e8
    for causal in (False, True):
        dense = attention(q, k, v, causal=causal)
        out, lse = flash_attention(q, k, v, causal=causal, block=16)
        assert np.all(np.isfinite(out)) and np.all(np.isfinite(lse))
        np.testing.assert_allclose(out, dense, rtol=1e-12,
                                   atol=64 * EPS * float(np.max(np.abs(v))))


def central_difference(f, x, h=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        g[idx] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("block", [2, 5, 128])
def test_backward_matches_finite_differences_and_the_jacobian(causal, block):
    rng = np.random.default_rng(11 + block)
    n, m, d, e = 7, 7, 3, 2
    q, k, v = rand(rng, n, d), rand(rng, m, d), rand(rng, m, e)
    g = rand(rng, n, e)
    out, lse = flash_attention(q, k, v, causal=causal, block=block)
    dq, dk, dv = flash_attention_backward(q, k, v, out, lse, g, causal=causal, block=block)

    def loss(qq=q, kk=k, vv=v):
        return np.sum(g * attention(qq, kk, vv, causal=causal))

    np.testing.assert_allclose(dq, central_difference(lambda x: loss(qq=x), q), rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(dk, central_difference(lambda x: loss(kk=x), k), rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(dv, central_difference(lambda x: loss(vv=x), v), rtol=1e-6,
                               atol=1e-8)
    allowed = np.arange(m)[None, :] <= np.arange(n)[:, None] if causal else np.ones((n, m),
                                                                                     bool)
    for got, ref in zip((dq, dk, dv), dense_backward(q, k, v, g, allowed, 1 / np.sqrt(d))):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13)


def test_backward_with_n_not_m_and_a_scale():
    rng = np.random.default_rng(5)
    n, m, d, e = 9, 14, 4, 3
    q, k, v, g = rand(rng, n, d), rand(rng, m, d), rand(rng, m, e), rand(rng, n, e)
    for causal in (False, True):
        out, lse = flash_attention(q, k, v, causal=causal, scale=0.7, block=4)
        grads = flash_attention_backward(q, k, v, out, lse, g, causal=causal, scale=0.7,
                                         block=4)
        allowed = (np.arange(m)[None, :] <= np.arange(n)[:, None] if causal
                   else np.ones((n, m), bool))
        for got, ref in zip(grads, dense_backward(q, k, v, g, allowed, 0.7)):
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13)


def test_batches_broadcast_and_gradients_sum_back():
    """Two heads sharing one key and value array (multi-query attention)."""
    rng = np.random.default_rng(3)
    q = rand(rng, 3, 2, 5, 4)              # (batch, heads, n, d)
    k, v = rand(rng, 3, 1, 6, 4), rand(rng, 3, 1, 6, 2)
    g = rand(rng, 3, 2, 5, 2)
    out, lse = flash_attention(q, k, v, block=4)
    assert out.shape == (3, 2, 5, 2) and lse.shape == (3, 2, 5)
    np.testing.assert_allclose(out, attention(q, k, v), rtol=1e-13, atol=1e-14)
    dq, dk, dv = flash_attention_backward(q, k, v, out, lse, g, block=4)
    assert dq.shape == q.shape and dk.shape == k.shape and dv.shape == v.shape
    want_dk, want_dv = np.zeros_like(k), np.zeros_like(v)
    for b in range(3):
        for h in range(2):
            one = dense_backward(q[b, h], k[b, 0], v[b, 0], g[b, h], np.ones((5, 6), bool),
                                 0.5)
            np.testing.assert_allclose(dq[b, h], one[0], rtol=1e-12, atol=1e-13)
            want_dk[b, 0] += one[1]
            want_dv[b, 0] += one[2]
    np.testing.assert_allclose(dk, want_dk, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dv, want_dv, rtol=1e-12, atol=1e-13)
    # a mask with its own batch axes
    mask = rng.random((2, 5, 6)) < 0.5
    dense = attention(q, k, v, mask=mask)
    for b in range(3):
        for h in range(2):
            np.testing.assert_allclose(
                dense[b, h], naive_attention(q[b, h], k[b, 0], v[b, 0], mask[h], 0.5),
                rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtypes_kept_and_rounded_once(dtype):
    rng = np.random.default_rng(9)
    q, k, v = (rand(rng, 12, 4).astype(dtype) for _ in range(3))
    ref = attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64))
    for out in (attention(q, k, v), flash_attention(q, k, v, block=5)[0]):
        assert out.dtype == dtype
        if dtype == np.float64:         # its own reference; tiled vs dense is tested above
            continue
        err = np.abs(out.astype(np.float64) - ref)
        # one rounding of the float64 result: half an ulp of the output's magnitude
        assert np.all(err <= np.spacing(np.abs(ref).astype(dtype)).astype(np.float64) / 2
                      + 1e-300)
    lse = flash_attention(q, k, v)[1]
    assert lse.dtype == (np.float32 if dtype == np.float16 else dtype)
    ints = np.arange(6).reshape(3, 2)
    assert attention(ints, ints, ints).dtype == np.float64
    out, lse = flash_attention(q, k, v)
    dq, dk, dv = flash_attention_backward(q, k, v, out, lse, np.ones_like(out))
    assert dq.dtype == dk.dtype == dv.dtype == dtype


def test_bad_input_is_named():
    q, k, v = np.ones((3, 2)), np.ones((4, 2)), np.ones((4, 5))
    cases = [
        (lambda: attention(np.ones(3), k, v), ValueError, "q must have at least 2 axes"),
        (lambda: attention(q, np.ones((4, 3)), v), ValueError, "same last axis d"),
        (lambda: attention(q, k, np.ones((3, 5))), ValueError, "same number of rows m"),
        (lambda: attention(q, k, v, mask=np.ones((3, 4))), TypeError, "mask must be boolean"),
        (lambda: attention(q, k, v, mask=np.ones((2, 4), bool)), ValueError, "mask of shape"),
        (lambda: attention(q, k, v, mask=np.ones((2, 3, 4), bool)), ValueError,
         "mask of shape"),
        (lambda: attention(q, k, v, causal=1), TypeError, "causal must be True or False"),
        (lambda: attention(q, k, v, scale=np.nan), ValueError, "scale must be finite"),
        (lambda: attention(q, k, v, scale="2"), TypeError, "scale must be a real number"),
        (lambda: attention(np.full((3, 2), np.nan), k, v), ValueError, "q must be finite"),
        (lambda: attention(q, k, np.full((4, 5), np.inf)), ValueError, "v must be finite"),
        (lambda: attention(q, [["a", "b"]] * 4, v), TypeError, "k must hold real numbers"),
        (lambda: attention(np.ones((3, 0)), np.ones((4, 0)), v), ValueError, "d >= 1"),
        (lambda: attention(np.ones((2, 3, 2)), np.ones((3, 4, 2)), np.ones((3, 4, 5))),
         ValueError, "leading (batch) axes"),
        (lambda: flash_attention(q, k, v, block=0), ValueError, "block must be a positive"),
        (lambda: flash_attention(q, k, v, block=2.5), TypeError, "block must be an integer"),
    ]
    out, lse = flash_attention(q, k, v)
    g = np.ones_like(out)
    cases += [
        (lambda: flash_attention_backward(q, k, v, out[:, :2], lse, g), ValueError,
         "out must have shape"),
        (lambda: flash_attention_backward(q, k, v, out, lse[:2], g), ValueError,
         "lse must have shape"),
        (lambda: flash_attention_backward(q, k, v, out, lse, g[None].repeat(2, 0)),
         ValueError, "d_out of shape"),
        (lambda: flash_attention_backward(q, k, v, out, lse + np.nan, g), ValueError,
         "lse must be finite or -inf"),
    ]
    for call, exc, words in cases:
        with pytest.raises(exc, match=None) as info:
            call()
        assert words in str(info.value), (words, str(info.value))


def test_inputs_are_not_modified():
    rng = np.random.default_rng(2)
    q, k, v = rand(rng, 2, 8, 3), rand(rng, 2, 9, 3), rand(rng, 2, 9, 4)
    mask = rng.random((8, 9)) < 0.5
    copies = [a.copy() for a in (q, k, v, mask)]
    attention(q, k, v, mask=mask)
    out, lse = flash_attention(q, k, v, causal=True, block=3)
    g = rand(rng, 2, 8, 4)
    more = [a.copy() for a in (out, lse, g)]
    flash_attention_backward(q, k, v, out, lse, g, causal=True, block=3)
    for a, b in zip((q, k, v, mask, out, lse, g), copies + more):
        assert np.array_equal(a, b)


def test_rows_do_not_influence_each_other():
    """Changing one query (wildly) leaves every other query's output bit for bit the same."""
    rng = np.random.default_rng(4)
    q, k, v = rand(rng, 20, 4), rand(rng, 30, 4), rand(rng, 30, 3)
    q2 = q.copy()
    q2[5] *= 1e4
    for f in (lambda x: attention(x, k, v), lambda x: flash_attention(x, k, v, block=8)[0],
              lambda x: flash_attention(x, k, v, block=8, causal=True)[0]):
        a, b = f(q), f(q2)
        others = np.arange(20) != 5
        assert np.array_equal(a[others], b[others])
        assert not np.array_equal(a[5], b[5])


def test_tiled_forward_and_backward_never_hold_the_score_matrix():
    rng = np.random.default_rng(6)
    n, d = 1024, 8
    q, k, v = rand(rng, n, d), rand(rng, n, d), rand(rng, n, d)
    scores_bytes = n * n * 8                              # 8 MiB
    tracemalloc.start()
    try:
        out, lse = flash_attention(q, k, v, block=64)
        flash_attention_backward(q, k, v, out, lse, np.ones_like(out), block=64)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        attention(q, k, v)
        dense_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < scores_bytes / 8, peak                 # tiles and O(n d) arrays only
    assert dense_peak > scores_bytes                     # the reference does form it


def test_edge_shapes_and_overflowing_scores():
    rng = np.random.default_rng(12)
    q, k, v = rand(rng, 0, 3), rand(rng, 4, 3), rand(rng, 4, 2)
    out, lse = flash_attention(q, k, v)
    assert out.shape == (0, 2) and lse.shape == (0,)
    dq, dk, dv = flash_attention_backward(q, k, v, out, lse, np.zeros((0, 2)))
    assert dq.shape == (0, 3) and np.all(dk == 0) and np.all(dv == 0)
    qb = rand(rng, 2, 0, 3)
    ob, lb = flash_attention(qb, k, v)
    assert flash_attention_backward(qb, k, v, ob, lb, ob)[0].shape == (2, 0, 3)
    big_q, big_k = np.array([[1e200]]), np.array([[-1e200], [-1e200]])
    for call in (lambda: attention(big_q, big_k, np.ones((2, 1))),
                 lambda: flash_attention(big_q, big_k, np.ones((2, 1))),
                 lambda: attention(np.ones((1, 3)), np.ones((4, 3)), v, scale=1e308)):
        with pytest.raises(ValueError, match="overflow the float64 range"):
            call()
    o1, l1 = flash_attention(rand(rng, 3, 3), k, v)
    with pytest.raises(ValueError, match="lse must have shape"):
        flash_attention_backward(rand(rng, 3, 3), k, v, o1, np.ones((2, 3)), o1)
