"""Sparse and stochastic alternatives (chapter 12): each function against an independent
implementation (sort vs bisection vs a QP solver), the published values, properties, special
values, bad input, and sampling distributions by chi-squared tests with fixed seeds."""

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp
from scipy.special import softmax as sp_softmax

from softmaxbook.sparse import (entmax15, entmax_bisect, gumbel_softmax, sparsemax,
                                sparsemax_loss, top_k_top_p_filter)

EPS = np.finfo(np.float64).eps


def qp_entmax(z, alpha):
    """argmax <p, z> + Tsallis entropy over the simplex, by SciPy's SLSQP (independent)."""
    z = np.asarray(z, float)
    K = len(z)

    def neg(p):
        p = np.clip(p, 0, None)
        ent = (np.sum(p - p**alpha)) / (alpha * (alpha - 1))
        return -(p @ z + ent)

    res = optimize.minimize(neg, np.full(K, 1 / K), method="SLSQP", bounds=[(0, 1)] * K,
                            constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1}],
                            options={"ftol": 1e-15, "maxiter": 500})
    return np.clip(res.x, 0, None)


def bisect_sparsemax(z):
    """Sparsemax by bisection on tau with a scalar loop (a second independent route)."""
    z = np.asarray(z, float)
    lo, hi = z.max() - 1, z.max()
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.maximum(z - mid, 0).sum() >= 1:
            lo = mid
        else:
            hi = mid
    return np.maximum(z - lo, 0)


def test_published_values():
    np.testing.assert_array_equal(sparsemax([2.0, 1.0, 0.1]), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(sp_softmax([2.0, 1.0, 0.1]), [0.659, 0.242, 0.099], atol=5e-4)
    np.testing.assert_allclose(sparsemax([-2.0, 0.0, 0.5]), [0.0, 0.25, 0.75], atol=1e-15)
    np.testing.assert_allclose(entmax15([-2.0, 0.0, 0.5]), [0.0, 0.326, 0.674], atol=5e-4)


@pytest.mark.parametrize("seed", range(12))
def test_three_routes_agree(seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1 + seed % 4, size=3 + seed)
    sort = sparsemax(z)
    np.testing.assert_allclose(sort, bisect_sparsemax(z), atol=1e-13)
    np.testing.assert_allclose(sort, qp_entmax(z, 2.0), atol=2e-6)
    np.testing.assert_allclose(entmax_bisect(z, 2.0), sort, atol=1e-13)
    e15 = entmax15(z)
    np.testing.assert_allclose(entmax_bisect(z, 1.5), e15, atol=1e-13)
    np.testing.assert_allclose(e15, qp_entmax(z, 1.5), atol=2e-5)
    for alpha in (1.25, 3.0):
        np.testing.assert_allclose(entmax_bisect(z, alpha), qp_entmax(z, alpha), atol=5e-5)


def test_alpha_limits():
    z = np.array([0.3, -1.2, 2.0, 0.0])
    np.testing.assert_allclose(entmax_bisect(z, 1), sp_softmax(z), rtol=1e-15)
    np.testing.assert_allclose(entmax_bisect(z, 1 + 1e-4), sp_softmax(z), atol=1e-4)
    assert np.count_nonzero(entmax_bisect(z, 1 + 1e-4)) == 4


@pytest.mark.parametrize("f", [sparsemax, entmax15, lambda z, axis=-1: entmax_bisect(
    z, 1.7, axis=axis), lambda z, axis=-1: entmax_bisect(z, 4.0, axis=axis)],
    ids=["sparsemax", "entmax15", "entmax17", "entmax4"])
def test_properties(f):
    rng = np.random.default_rng(3)
    z = rng.normal(0, 3, size=(50, 9))
    p = f(z)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=16 * EPS)
    np.testing.assert_allclose(f(z + 7.5), p, atol=1e-13)                # shift invariant
    perm = rng.permutation(9)
    np.testing.assert_allclose(f(z[:, perm]), p[:, perm], atol=1e-15)    # equivariant
    assert not np.allclose(f(3 * z), p)                                  # not scale invariant
    assert np.any(p == 0)                                                 # sparse
    # ranks kept: larger score, larger (or equal) probability
    order = np.argsort(z, axis=1)
    assert np.all(np.diff(np.take_along_axis(p, order, axis=1), axis=1) >= 0)
    # ties get equal values, whatever their position
    zt = np.array([1.0, 0.3, 1.0, 0.3, -2.0])
    pt = f(zt)
    assert pt[0] == pt[2] and pt[1] == pt[3]
    # along another axis
    np.testing.assert_allclose(f(z.T, axis=0), p.T, atol=1e-15)


def test_two_classes_clip_and_saturation():
    t = np.linspace(-3, 3, 61)
    z = np.stack([t, np.zeros_like(t)], axis=1)
    np.testing.assert_allclose(sparsemax(z)[:, 0], np.clip((t + 1) / 2, 0, 1), atol=1e-15)
    for alpha in (1.5, 2.0, 3.0):
        sat = 1 / (alpha - 1)
        below = entmax_bisect([[sat * 0.98, 0.0]], alpha)[0, 0]
        at = entmax_bisect([[sat, 0.0]], alpha)[0, 0]
        assert below < 1 and at == pytest.approx(1, abs=1e-12)
    np.testing.assert_allclose(entmax15([[2.0, 0.0]]), [[1.0, 0.0]], atol=1e-15)
    assert entmax15([[1.99, 0.0]])[0, 1] > 0


def test_sparsemax_jacobian_by_finite_differences():
    rng = np.random.default_rng(8)
    z = rng.normal(size=7)
    p = sparsemax(z)
    s = (p > 0).astype(float)
    J = np.diag(s) - np.outer(s, s) / s.sum()
    h = 1e-7
    fd = np.column_stack([(sparsemax(z + h * e) - sparsemax(z - h * e)) / (2 * h)
                          for e in np.eye(7)])
    np.testing.assert_allclose(fd, J, atol=1e-7)


def test_sparsemax_loss_gradient_and_fenchel_young():
    rng = np.random.default_rng(9)
    z = rng.normal(0, 2, size=(20, 6))
    y = rng.integers(0, 6, size=20)
    losses = sparsemax_loss(z, y, reduction="none")
    p = sparsemax(z)
    fy = np.sum(p * z, axis=1) - 0.5 * np.sum(p * p, axis=1) + 0.5 - z[np.arange(20), y]
    np.testing.assert_allclose(losses, fy, atol=1e-13)
    assert np.all(losses >= 0)
    assert sparsemax_loss(z, y) == pytest.approx(losses.mean(), rel=1e-15)
    assert sparsemax_loss(z, y, reduction="sum") == pytest.approx(losses.sum(), rel=1e-15)
    h = 1e-6
    for n in range(3):
        g = np.array([(sparsemax_loss(z[n] + h * e, y[n]) - sparsemax_loss(z[n] - h * e, y[n]))
                      / (2 * h) for e in np.eye(6)])
        np.testing.assert_allclose(g, p[n] - np.eye(6)[y[n]], atol=1e-7)
    # zero exactly when sparsemax is the one-hot vector of the label
    assert sparsemax_loss([[3.0, 1.0, 0.0]], [0]) == 0
    assert sparsemax_loss([[3.0, 1.0, 0.0]], [1]) > 0
    with pytest.raises(IndexError, match="label 3"):
        sparsemax_loss([[1.0, 2.0, 3.0]], [3])
    with pytest.raises(ValueError, match="finite"):
        sparsemax_loss([[1.0, np.inf]], [0])


@pytest.mark.parametrize("f", [sparsemax, entmax15,
                               lambda z, axis=-1: entmax_bisect(z, 1.5, axis=axis),
                               lambda z, axis=-1: entmax_bisect(z, 3.0, axis=axis)],
                         ids=["sparsemax", "entmax15", "bisect", "bisect3"])
def test_special_values_dtypes_and_input(f):
    z = np.array([[0.0, 1.0, np.nan], [0.0, np.inf, 1.0], [2.0, -np.inf, 1.0],
                  [-np.inf, -np.inf, -np.inf], [1e308, -1e308, 0.0]])
    with np.errstate(all="ignore"):
        p = f(z)
    assert np.all(np.isnan(p[0])) and np.all(np.isnan(p[1])) and np.all(np.isnan(p[3]))
    assert p[2, 1] == 0 and p[2].sum() == pytest.approx(1)
    np.testing.assert_array_equal(p[4], [1.0, 0.0, 0.0])
    for dtype in (np.float16, np.float32, np.float64):
        zz = np.array([[0.5, 0.2, -1.0]], dtype=dtype)
        out = f(zz)
        assert out.dtype == dtype
        np.testing.assert_allclose(out.astype(float), f(zz.astype(float)),
                                   atol=np.finfo(dtype).eps)
    assert f(np.array([[1, 2, 3]])).dtype == np.float64
    assert f(np.zeros((3, 0))).shape == (3, 0)
    with pytest.raises(TypeError, match="z must hold real numbers"):
        f(np.array(["a", "b"]))
    with pytest.raises(np.exceptions.AxisError):
        f(np.zeros((2, 3)), axis=2)
    rng = np.random.default_rng(1)
    big = rng.normal(size=(6, 5))
    keep = big.copy()
    base = f(big)
    assert np.array_equal(big, keep)                          # input untouched
    big2 = big.copy()
    big2[2] = 1e6 * rng.normal(size=5)
    assert np.array_equal(f(big2)[[0, 1, 3, 4, 5]], base[[0, 1, 3, 4, 5]])  # rows independent


def test_entmax_bisect_bad_alpha():
    with pytest.raises(ValueError, match="alpha must be >= 1"):
        entmax_bisect([1.0, 2.0], 0.5)
    with pytest.raises(TypeError, match="alpha must be a real number"):
        entmax_bisect([1.0, 2.0], "2")


def test_gumbel_max_frequencies_chi_squared():
    rng = np.random.default_rng(2024)
    z = np.array([1.0, 0.0, -1.0, 2.0, 0.5])
    n = 20000
    hard = gumbel_softmax(np.tile(z, (n, 1)), 1.0, rng=rng, hard=True)
    counts = hard.sum(axis=0)
    assert np.all(hard.sum(axis=1) == 1)
    chi2, pval = stats.chisquare(counts, n * sp_softmax(z))
    assert pval > 1e-3, (counts, pval)
    # the wrong distribution is rejected: the test can fail
    assert stats.chisquare(counts, n * sp_softmax(z / 2))[1] < 1e-6


def test_gumbel_max_value_and_relaxed_samples():
    rng = np.random.default_rng(7)
    z = np.array([0.5, -0.3, 1.2])
    g = rng.gumbel(size=(200000, 3))
    top = (z + g).max(axis=1)
    assert abs(top.mean() - (logsumexp(z) + np.euler_gamma)) < 4 * top.std() / np.sqrt(len(top))
    y = gumbel_softmax(np.tile(z, (5000, 1)), 0.5, rng=np.random.default_rng(3))
    np.testing.assert_allclose(y.sum(axis=1), 1, atol=1e-12)
    assert np.all(y > 0) and y.dtype == np.float64
    a = gumbel_softmax(z, 0.7, rng=np.random.default_rng(5))
    b = gumbel_softmax(z, 0.7, rng=np.random.default_rng(5))
    assert np.array_equal(a, b)                                # reproducible
    # the mean of the relaxed sample is not softmax(z) at tau > 0
    assert not np.allclose(y.mean(axis=0), sp_softmax(z), atol=0.01)
    assert gumbel_softmax(z.astype(np.float32), 1.0, rng=rng).dtype == np.float32
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        gumbel_softmax(z, 1.0, rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="temperature"):
        gumbel_softmax(z, 0.0, rng=rng)
    with pytest.raises(TypeError, match="hard"):
        gumbel_softmax(z, 1.0, rng=rng, hard="yes")
    assert gumbel_softmax([0.0, -np.inf], 1.0, rng=rng, hard=True)[1] == 0


def brute_top_k_top_p(z, k, p):
    """Loop version: keep the k largest (ties kept), then the nucleus of mass p."""
    z = np.asarray(z, float).copy()
    if k is not None:
        kth = sorted(z, reverse=True)[k - 1] if k <= len(z) else -np.inf
        z[z < kth] = -np.inf
    if p is not None:
        probs = sp_softmax(z)
        keep = [probs[probs > probs[i]].sum() < p for i in range(len(z))]
        z[~np.array(keep)] = -np.inf
    return z


@pytest.mark.parametrize("seed", range(10))
def test_top_k_top_p_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    z = np.round(rng.normal(0, 2, size=12), 1)              # rounding makes ties
    for k in (None, 1, 3, 12, 20):
        for p in (None, 0.3, 0.9, 1.0):
            got = top_k_top_p_filter(z, k=k, p=p)
            want = brute_top_k_top_p(z, k, p)
            np.testing.assert_array_equal(got, want, err_msg=f"k={k}, p={p}")
            assert np.isfinite(got).any()
    rows = np.stack([z, z[::-1]])
    np.testing.assert_array_equal(top_k_top_p_filter(rows.T, k=3, p=0.8, axis=0),
                                  np.stack([brute_top_k_top_p(r, 3, 0.8) for r in rows]).T)


def test_top_k_top_p_bad_input():
    with pytest.raises(ValueError, match="k must be a positive integer"):
        top_k_top_p_filter([1.0, 2.0], k=0)
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\]"):
        top_k_top_p_filter([1.0, 2.0], p=1.5)
    with pytest.raises(ValueError, match="p must be a positive number"):
        top_k_top_p_filter([1.0, 2.0], p=0)
    z = np.array([1.0, 2.0])
    out = top_k_top_p_filter(z)
    assert np.array_equal(out, z) and out is not z


@pytest.mark.parametrize("seed", range(20))
def test_recovers_a_constructed_answer(seed):
    """Choose the answer first (a point of the simplex with zeros and tiny entries), build
    scores that map to it, and ask for it back: entries on the edge of the support included."""
    rng = np.random.default_rng(100 + seed)
    K = 10
    support = rng.permutation(K)[: rng.integers(1, K + 1)]
    p = np.zeros(K)
    p[support] = rng.dirichlet(np.ones(len(support)))
    if len(support) > 1:
        p[support[0]] = 1e-9                       # barely inside the support
        p /= p.sum()
    tau = rng.normal()
    out = np.setdiff1d(np.arange(K), support)
    z = p + tau                                     # sparsemax: p = z - tau on the support
    z[out] = tau - rng.uniform(0, 2, size=len(out))
    if len(out):
        z[out[0]] = tau                             # exactly on the threshold: p = 0
    np.testing.assert_allclose(sparsemax(z), p, atol=8 * EPS)
    z15 = 2 * (np.sqrt(p) + tau)                    # 1.5-entmax: p = (z/2 - tau)^2
    z15[out] = 2 * tau - rng.uniform(0, 2, size=len(out))
    if len(out):
        z15[out[0]] = 2 * tau
    np.testing.assert_allclose(entmax15(z15), p, atol=32 * EPS)
    np.testing.assert_allclose(entmax_bisect(z15, 1.5), p, atol=32 * EPS)


def mp_entmax(z, alpha, digits=300):
    """alpha-entmax in mpmath (bisection on tau with hundreds of digits): the reference."""
    import mpmath

    with mpmath.workdps(digits):
        a = mpmath.mpf(alpha)
        h = [(a - 1) * mpmath.mpf(float(v)) for v in z]
        top = max(h)
        h = [v - top for v in h]
        lo, hi = mpmath.mpf(-1), mpmath.mpf(0)
        for _ in range(digits * 4):
            mid = (lo + hi) / 2
            tot = sum(max(v - mid, 0) ** (1 / (a - 1)) for v in h)
            lo, hi = (mid, hi) if tot >= 1 else (lo, mid)
        p = [max(v - lo, 0) ** (1 / (a - 1)) for v in h]
        s = sum(p)
        return np.array([float(v / s) for v in p])


@pytest.mark.parametrize("alpha", [1.2, 1.5, 2.5, 6.0, 10.0, 50.0])
def test_entmax_bisect_against_mpmath(alpha):
    rng = np.random.default_rng(int(alpha * 10))
    rows = [rng.normal(0, 0.1, size=3), rng.normal(0, 1, size=5),
            np.array([-0.0229, 0.0856]), np.array([0.0215, 0.0363, -0.0521])]
    for z in rows:
        np.testing.assert_allclose(entmax_bisect(z, alpha), mp_entmax(z, alpha),
                                   rtol=0, atol=1e-13)


def test_review_edge_cases():
    # top-p at a boundary that rounding would miss: 0.6 + 0.3 is 0.8999999999999999
    z = np.log([0.6, 0.3, 0.1])
    assert np.isfinite(top_k_top_p_filter(z, p=0.9)).sum() == 2
    # NaN or +inf logits: NaN out, not a valid-looking row
    for bad in ([1.0, np.nan, 0.0, -1.0], [1.0, np.inf, 0.0]):
        assert np.all(np.isnan(top_k_top_p_filter(bad, k=2)))
        assert np.all(np.isnan(top_k_top_p_filter(bad, p=0.9)))
    # a tiny temperature: the hard sample, not NaN
    y = gumbel_softmax([0.0, 1.0, -1.0], 1e-308, rng=np.random.default_rng(1))
    assert np.all(np.isfinite(y)) and set(np.unique(y)) <= {0.0, 1.0}
    # sparsemax_loss: float labels get a message about integer labels
    with pytest.raises(TypeError, match="sparsemax_loss takes integer class labels"):
        sparsemax_loss([[0.2, 0.8]], [[0.2, 0.8]])
    assert sparsemax_loss(np.array([[1.0, 0.0]], dtype=np.longdouble), [0]).dtype == \
        np.longdouble
    # no overflow warnings for finite extremes
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sparsemax([1e308, -1e308])
        entmax15([1e308, -1e308])
        sparsemax_loss([[1e300, -1e300]], [0])
