r"""Sparse and stochastic relatives of softmax (chapter 12).

* :func:`sparsemax` and :func:`entmax15`, :func:`entmax_bisect`: the maps
  :math:`\operatorname{argmax}_{\mathbf p \in \Delta} \langle \mathbf p, \mathbf z\rangle +
  H_\alpha(\mathbf p)` for the Tsallis entropies :math:`H_\alpha` (softmax is
  :math:`\alpha \to 1`, sparsemax :math:`\alpha = 2`); unlike softmax they return exact zeros.
* :func:`sparsemax_loss`, the loss whose gradient is ``sparsemax(z) - onehot(label)``.
* :func:`gumbel_softmax`, a differentiable relaxation of sampling from ``softmax(logits)``.
* :func:`top_k_top_p_filter`, the truncations used when sampling from a language model.

Input rules are those of :func:`softmaxbook.softmax`: floating input keeps its dtype (the work
is done in float64, longdouble in itself), integer and boolean input becomes float64, anything
else raises ``TypeError``; a bad axis raises NumPy's ``AxisError``; the input is never
modified and each slice along ``axis`` is computed from its own values only.

Special values, per slice along ``axis`` (the same as softmax): a NaN or a ``+inf`` entry makes
the slice NaN; ``-inf`` entries get exactly 0; a slice of only ``-inf`` is NaN; an empty axis
gives an empty result. Exact ties are treated alike: tied entries always get equal values.
"""

from __future__ import annotations

import numpy as np

from ._validation import (check_axis, check_labels, check_number, check_temperature,
                          real_array_and_dtype)
from .core import softmax

__all__ = ["sparsemax", "entmax15", "entmax_bisect", "sparsemax_loss", "gumbel_softmax",
           "top_k_top_p_filter"]


def _rows(z, axis, name="z"):
    """``(x, dtype, finish)``: ``z`` as float rows ``(R, K)`` shifted by their maximum, the
    result dtype, and a function that turns ``(R, K)`` results back into ``z``'s layout.
    Rows with a NaN, a ``+inf`` or no finite entry are NaN in ``x``."""
    a, dtype = real_array_and_dtype(z, name=name)
    if a.ndim == 0:
        raise np.exceptions.AxisError(f"{name} is 0-d: there is no axis to normalise along")
    ax = check_axis(axis, a.ndim)
    work = np.longdouble if dtype == np.longdouble else np.float64
    moved = np.moveaxis(a, ax, -1)
    shape = moved.shape
    x = np.array(moved, dtype=work).reshape(-1, shape[-1]) if a.size else np.zeros(
        (int(np.prod(shape[:-1], dtype=np.int64)), shape[-1]), dtype=work)
    if x.shape[1]:
        with np.errstate(invalid="ignore"):
            top = np.max(x, axis=1, keepdims=True)
        bad = ~np.isfinite(top) | np.isnan(x).any(axis=1, keepdims=True)
        with np.errstate(over="ignore"):             # 1e308 - (-1e308): -inf, correctly
            x = np.where(bad, np.nan, x - np.where(bad, 0, top))

    def finish(y):
        y = y.reshape(shape)
        return np.ascontiguousarray(np.moveaxis(y, -1, ax)).astype(dtype, copy=False)

    return x, dtype, finish


def _sparsemax_rows(x):
    """Sparsemax of finite-or-NaN rows ``x`` (maximum 0), with its threshold and support."""
    K = x.shape[1]
    srt = -np.sort(-x, axis=1)                         # descending; -inf last, NaN first
    csum = np.cumsum(srt, axis=1)
    k = np.arange(1, K + 1, dtype=x.dtype)
    with np.errstate(invalid="ignore"):
        support = 1 + k * srt > csum                  # a prefix of True (Martins & Astudillo)
    size = np.maximum(support.sum(axis=1), 1)
    tau = (np.take_along_axis(csum, size[:, None] - 1, axis=1) - 1) / size[:, None]
    with np.errstate(invalid="ignore"):
        p = np.maximum(x - tau, 0)
    return p, tau[:, 0], size


def sparsemax(z, axis=-1):
    r"""Sparsemax: the Euclidean projection of ``z`` onto the probability simplex.

    .. math:: \operatorname{sparsemax}(\mathbf z) = \operatorname*{argmin}_{\mathbf p \in
              \Delta^{K-1}} \lVert \mathbf p - \mathbf z\rVert^2 = [\mathbf z - \tau]_+

    with the threshold :math:`\tau` that makes the entries sum to one, found by sorting
    (Martins & Astudillo 2016, Algorithm 1): with :math:`z_{(1)} \ge z_{(2)} \ge \dots`,
    the support has :math:`k = \max\{k : 1 + k z_{(k)} > \sum_{j \le k} z_{(j)}\}` entries and
    :math:`\tau = (\sum_{j\le k} z_{(j)} - 1)/k`.

    Parameters
    ----------
    z : array_like of real numbers
        The scores (rules of :mod:`softmaxbook.sparse`).
    axis : int, optional
        The axis along which the result sums to one.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``z``; entries in ``[0, 1]``, many of them exactly 0.

    Examples
    --------
    >>> sparsemax([2.0, 1.0, 0.1])          # softmax gives (0.659, 0.242, 0.099)
    array([1., 0., 0.])
    >>> sparsemax([-2.0, 0.0, 0.5])
    array([0.  , 0.25, 0.75])
    >>> sparsemax([[1.0, 1.0], [0.0, -np.inf]])
    array([[0.5, 0.5],
           [1. , 0. ]])
    """
    x, _, finish = _rows(z, axis)
    if x.shape[1] == 0:
        return finish(x)
    return finish(_sparsemax_rows(x)[0])


def _entmax15_rows(x):
    """1.5-entmax of rows ``x`` (maximum 0), exactly, by sorting (Peters et al. 2019)."""
    K = x.shape[1]
    h = x / 2                                          # (alpha - 1) z with alpha = 1.5
    srt = -np.sort(-h, axis=1)
    k = np.arange(1, K + 1, dtype=x.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        mean = np.cumsum(srt, axis=1) / k
        mean_sq = np.cumsum(srt * srt, axis=1) / k
        delta = (1 - k * (mean_sq - mean * mean)) / k
        tau = mean - np.sqrt(np.maximum(delta, 0))
        ok = tau <= srt                               # the support is a prefix
    size = np.maximum(ok.sum(axis=1), 1)
    tau_star = np.take_along_axis(tau, size[:, None] - 1, axis=1)
    with np.errstate(invalid="ignore"):
        p = np.maximum(h - tau_star, 0) ** 2
    return p


def entmax15(z, axis=-1):
    r"""1.5-entmax, :math:`[\tfrac12\mathbf z - \tau]_+^2` with :math:`\sum_i p_i = 1`, exactly.

    The mapping :math:`\alpha`-entmax of Peters, Niculae & Martins (2019) for
    :math:`\alpha = 1.5`, between softmax (:math:`\alpha = 1`) and sparsemax
    (:math:`\alpha = 2`): sparse, but smoother than sparsemax. The threshold comes from a
    quadratic equation on each candidate support, found by sorting. Rules and special values
    as in :mod:`softmaxbook.sparse`.

    Examples
    --------
    >>> entmax15([-2.0, 0.0, 0.5]).round(3)     # the entmax package's README example
    array([0.   , 0.326, 0.674])
    >>> entmax15([3.0, 0.0, 0.0])               # a gap of 2 or more: one-hot
    array([1., 0., 0.])
    """
    x, _, finish = _rows(z, axis)
    if x.shape[1] == 0:
        return finish(x)
    return finish(_entmax15_rows(x))


def _entmax_tau_rows(x, alpha, n_iter):
    """1 < alpha <= 2: bisection on the threshold (the power 1/(alpha-1) >= 1 damps its
    rounding error), then division by the sum."""
    K = x.shape[1]
    h = (alpha - 1) * x                                # max 0 (or NaN)
    power = 1 / (alpha - 1)
    lo = np.full((x.shape[0], 1), -1.0, dtype=x.dtype)
    hi = np.full_like(lo, -(float(K) ** (1 - alpha)))
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        for _ in range(n_iter):
            mid = (lo + hi) / 2
            total = np.sum(np.maximum(h - mid, 0) ** power, axis=1, keepdims=True)
            big = total >= 1                           # tau too small: move lo up
            lo = np.where(big, mid, lo)
            hi = np.where(big, hi, mid)
        p = np.maximum(h - lo, 0) ** power
        return p / np.sum(p, axis=1, keepdims=True)


def _entmax_support_rows(x, alpha, n_iter):
    """alpha > 2: the support from score differences, then bisection on the smallest entry."""
    R, K = x.shape
    power = 1 / (alpha - 1)
    bad = np.isnan(x).any(axis=1)
    h = np.where(bad[:, None], 0.0, (alpha - 1) * x)       # max 0; -inf stays -inf
    order = np.argsort(-h, axis=1, kind="stable")
    srt = np.take_along_axis(h, order, axis=1)
    cols = np.arange(K)

    def mass_above(k):
        # sum over j < k of (h_(j) - h_(k))^power, per row, for 0-based k (array)
        ref = np.take_along_axis(srt, k[:, None], axis=1)
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.where(cols[None, :] < k[:, None], srt - ref, 0.0)
            return np.sum(np.where(np.isfinite(d), d, np.inf) ** power, axis=1)

    lo = np.zeros(R, dtype=np.intp)              # entry lo is always in the support
    hi = np.full(R, K - 1, dtype=np.intp)
    while np.any(lo < hi):
        mid = (lo + hi + 1) // 2
        inside = mass_above(mid) < 1
        lo = np.where(inside & (lo < hi), mid, lo)
        hi = np.where(~inside & (lo < hi), mid - 1, hi)
    k = lo                                        # 0-based index of the last supported entry
    ref = np.take_along_axis(srt, k[:, None], axis=1)
    gaps = np.where(cols[None, :] < k[:, None], srt - ref, 0.0)    # >= 0, finite
    above = cols[None, :] < k[:, None]
    xl, xh = np.zeros((R, 1)), np.ones((R, 1))
    with np.errstate(under="ignore", over="ignore"):
        for _ in range(n_iter):
            xm = (xl + xh) / 2
            total = xm[:, 0] + np.sum(np.where(above, (gaps + xm ** (alpha - 1)) ** power,
                                               0.0), axis=1)
            big = (total >= 1)[:, None]
            xh = np.where(big, xm, xh)
            xl = np.where(big, xl, xm)
        xs = (xl + xh) / 2
        vals = np.where(above, (gaps + xs ** (alpha - 1)) ** power, 0.0)
    # the last supported entry, and any tied with it (gap 0), are x itself
    tied = (cols[None, :] == k[:, None]) | (above & (gaps == 0))
    vals = np.where(tied, xs, vals)
    vals /= vals.sum(axis=1, keepdims=True)
    p = np.zeros_like(vals)
    np.put_along_axis(p, order, vals, axis=1)
    p[bad] = np.nan
    return p


#: Below this alpha - 1, entmax_bisect returns softmax: the two differ by O(alpha - 1), less
#: than the rounding error of the entmax formula there (about eps / (alpha - 1)).
ALPHA_SOFTMAX = 1e-8


def entmax_bisect(z, alpha, axis=-1, n_iter=None):
    r""":math:`\alpha`-entmax for any :math:`\alpha \ge 1`, by bisection.

    .. math:: \alpha\text{-entmax}(\mathbf z)_i = [(\alpha - 1) z_i - \tau]_+^{1/(\alpha-1)},
              \qquad \sum_i p_i = 1 ,

    the maximiser of :math:`\langle\mathbf p, \mathbf z\rangle + H_\alpha(\mathbf p)` over
    the simplex, with the Tsallis entropy :math:`H_\alpha(\mathbf p) =
    \frac{1}{\alpha(\alpha-1)}\sum_j (p_j - p_j^\alpha)` (the scaling of Peters et al. 2019
    and Blondel et al. 2020). ``alpha = 1`` is softmax (computed by
    :func:`softmaxbook.softmax`, as is any ``alpha - 1`` below :data:`ALPHA_SOFTMAX`),
    ``alpha = 2`` sparsemax.

    Method. For :math:`\alpha \le 2`, bisection on :math:`\tau` in
    :math:`[-1, -K^{1-\alpha}]` (with the largest entry of :math:`(\alpha-1)\mathbf z` shifted
    to 0). For :math:`\alpha > 2` that loses the small entries (an error of one ulp in
    :math:`\tau` is raised to the power :math:`1/(\alpha - 1) < 1`); instead, with :math:`h = (\alpha - 1)\mathbf z` sorted in
    decreasing order, the support is the largest :math:`k` with
    :math:`\sum_{j<k} (h_{(j)} - h_{(k)})^{1/(\alpha-1)} < 1` (found by a binary search on
    :math:`k`, from differences of scores only), and then the smallest supported entry
    :math:`x = p_{(k)}` solves :math:`x + \sum_{j<k} (h_{(j)} - h_{(k)} +
    x^{\alpha-1})^{1/(\alpha-1)} = 1`, found by bisection on :math:`x \in [0, 1]`: every
    entry is then accurate to a few eps in absolute terms. The result is divided by its sum.

    Parameters
    ----------
    z : array_like of real numbers
    alpha : float, at least 1
    axis : int, optional
    n_iter : int, optional
        Bisection steps on :math:`x`; by default as many as the working precision needs.

    Examples
    --------
    >>> entmax_bisect([-2.0, 0.0, 0.5], 1.5).round(3)
    array([0.   , 0.326, 0.674])
    >>> bool(np.allclose(entmax_bisect([0.3, 0.1, -1.0], 2), sparsemax([0.3, 0.1, -1.0])))
    True
    >>> entmax_bisect([-0.0229, 0.0856], 10).round(5)   # large alpha, small entries kept
    array([0.00264, 0.99736])
    """
    alpha = check_number(alpha, "alpha", low=1)
    if n_iter is not None:
        n_iter = check_number(n_iter, "n_iter", low=1, integer=True)
    if alpha - 1 < ALPHA_SOFTMAX:
        return softmax(z, axis=axis)
    x, _, finish = _rows(z, axis)
    R, K = x.shape
    if K == 0:
        return finish(x)
    if n_iter is None:
        n_iter = np.finfo(x.dtype).nmant + 12
    if alpha <= 2:
        p = _entmax_tau_rows(x, alpha, n_iter)
    else:
        p = _entmax_support_rows(x, alpha, n_iter)
    return finish(p)


def sparsemax_loss(z, labels, reduction="mean"):
    r"""The sparsemax loss of integer labels (Martins & Astudillo 2016, eq. 18).

    .. math:: L(\mathbf z; k) = -z_k + \tfrac12 \sum_{j \in S(\mathbf z)} (z_j^2 - \tau^2)
              + \tfrac12 ,

    with the support :math:`S` and threshold :math:`\tau` of :func:`sparsemax`. It is convex,
    non-negative, zero exactly when ``sparsemax(z)`` is the one-hot vector of ``k``, and its
    gradient is ``sparsemax(z) - onehot(k)``. It is the Fenchel–Young loss of the Gini
    entropy, as cross-entropy is that of the Shannon entropy.

    Parameters
    ----------
    z : array_like of real numbers, shape (..., K)
        Finite scores, classes on the last axis.
    labels : array_like of int, shape (...)
    reduction : {"mean", "sum", "none"}

    Examples
    --------
    >>> sparsemax_loss([[2.0, 1.0, 0.1]], [0])        # sparsemax is already e_0
    np.float64(0.0)
    >>> float(sparsemax_loss([[0.0, 0.0]], [1]))      # p = (1/2, 1/2): 1/4
    0.25
    """
    a, dtype = real_array_and_dtype(z, name="z")
    if a.ndim == 0:
        raise ValueError("z must have at least one axis (the classes, last); got a 0-d array")
    if not np.all(np.isfinite(a)):
        raise ValueError("z must be finite for sparsemax_loss")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    try:
        y = check_labels(labels, a.shape, logits_name="z")
    except TypeError as exc:
        raise TypeError(f"sparsemax_loss takes integer class labels: {exc}".split(" (convert")[0]
                        ) from None
    x = np.array(a, dtype=np.float64).reshape(-1, a.shape[-1])
    with np.errstate(over="ignore"):
        x = x - x.max(axis=1, keepdims=True)       # the loss is shift-invariant
    p, tau, _ = _sparsemax_rows(x)
    inside = p > 0
    xs = np.where(inside, x, 0.0)                 # entries outside never squared
    sq = np.where(inside, xs * xs - tau[:, None] ** 2, 0.0).sum(axis=1)
    zk = np.take_along_axis(x, y.reshape(-1, 1), axis=1)[:, 0]
    loss = np.maximum(-zk + 0.5 * sq + 0.5, 0.0).reshape(a.shape[:-1])
    out_dtype = dtype                              # longdouble: computed in float64
    if reduction == "none":
        return loss.astype(out_dtype)
    total = loss.sum() if reduction == "sum" else loss.mean() if loss.size else np.nan
    return np.asarray(total, dtype=out_dtype)[()]


def gumbel_softmax(logits, temperature, *, rng, hard=False, axis=-1):
    r"""A Gumbel-softmax (Concrete) sample: :math:`\operatorname{softmax}((\mathbf z +
    \mathbf g)/\tau)` with independent standard Gumbel noise :math:`g_i`.

    As :math:`\tau \to 0` the sample becomes the one-hot vector of
    :math:`\operatorname{argmax}_i (z_i + g_i)`, which is distributed as
    :math:`\operatorname{softmax}(\mathbf z)` (the Gumbel-max trick; Jang, Gu & Poole 2017,
    Maddison, Mnih & Teh 2017).

    Parameters
    ----------
    logits : array_like of real numbers
        Unnormalised log-probabilities (``-inf``: a class that is never drawn).
    temperature : positive float
    rng : numpy.random.Generator
        The source of the noise (required, so that results are reproducible).
    hard : bool
        Return the one-hot vector of the argmax instead of the relaxed sample: what the
        forward pass of the straight-through estimator uses.
    axis : int, optional

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = gumbel_softmax([1.0, 2.0, 3.0], 0.5, rng=rng)
    >>> bool(np.isclose(y.sum(), 1.0)), y.shape
    (True, (3,))
    >>> gumbel_softmax([0.0, 0.0, -np.inf], 1.0, rng=rng, hard=True)[2]
    np.float64(0.0)
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    if not isinstance(hard, (bool, np.bool_)):
        raise TypeError(f"hard must be True or False, got {hard!r}")
    t = check_temperature(temperature)
    a, dtype = real_array_and_dtype(logits, name="logits")
    if a.ndim == 0:
        raise np.exceptions.AxisError("logits is 0-d: there is no axis to sample along")
    ax = check_axis(axis, a.ndim)
    g = rng.gumbel(size=a.shape)
    noisy = a.astype(np.float64) + g
    if hard:
        moved = np.moveaxis(noisy, ax, -1)
        out = np.zeros(moved.shape)
        if moved.shape[-1]:
            with np.errstate(invalid="ignore"):
                bad = np.isnan(moved).any(axis=-1) | ~np.isfinite(moved.max(axis=-1))
            idx = np.argmax(np.where(np.isnan(moved), -np.inf, moved), axis=-1)
            np.put_along_axis(out, idx[..., None], 1.0, axis=-1)
            out[bad] = np.nan
        return np.moveaxis(out, -1, ax).astype(dtype)
    return softmax(noisy, axis=ax, temperature=t).astype(dtype)   # shifts, then divides


def top_k_top_p_filter(logits, *, k=None, p=None, axis=-1):
    r"""Logits with ``-inf`` outside the top ``k`` and the top-``p`` nucleus.

    * ``k``: keep every entry at least as large as the ``k``-th largest (entries tied with
      it are all kept, so more than ``k`` may remain).
    * ``p``: keep entry :math:`i` when the classes strictly more probable than :math:`i`
      have total probability below ``p`` (Holtzman et al. 2020), computed on the
      distribution left after the top-``k`` cut: the smallest set of most probable classes
      whose probability reaches ``p``, with ties at its edge kept. The most probable class
      always stays.

    Sampling from ``softmax`` of the result samples from the truncated, renormalised
    distribution. ``k=None`` and ``p=None`` leave the logits as they are (a copy). A mass
    that equals ``p`` up to the rounding of the cumulative sums (``K`` eps) counts as
    reaching it. A slice with a NaN or a ``+inf`` logit is returned as NaN (there is no
    distribution to truncate).

    Examples
    --------
    >>> z = np.log([0.5, 0.3, 0.15, 0.05])
    >>> np.exp(top_k_top_p_filter(z, k=2))
    array([0.5, 0.3, 0. , 0. ])
    >>> np.exp(top_k_top_p_filter(z, p=0.75))        # 0.5 + 0.3 reaches 0.75
    array([0.5, 0.3, 0. , 0. ])
    >>> np.exp(top_k_top_p_filter(z, p=0.85))
    array([0.5 , 0.3 , 0.15, 0.  ])
    """
    a, dtype = real_array_and_dtype(logits, name="logits")
    if a.ndim == 0:
        raise np.exceptions.AxisError("logits is 0-d: there is no axis to filter along")
    ax = check_axis(axis, a.ndim)
    if k is not None:
        k = check_number(k, "k", low=1, integer=True)
    if p is not None:
        p = check_number(p, "p", low=0, strict=True)
        if p > 1:
            raise ValueError(f"p must be in (0, 1], got {p!r}")
    out = np.array(np.moveaxis(a, ax, -1), dtype=dtype, copy=True)
    K = out.shape[-1]
    if K == 0:
        return np.moveaxis(out, -1, ax)
    bad = np.isnan(out).any(axis=-1) | (out == np.inf).any(axis=-1)
    if k is not None and k < K:
        kth = -np.sort(-out.astype(np.float64), axis=-1)[..., k - 1:k]
        out = np.where(out.astype(np.float64) >= kth, out, -np.inf).astype(dtype)
    if p is not None and p < 1:
        probs = softmax(out.astype(np.float64), axis=-1)
        order = np.argsort(-probs, axis=-1, kind="stable")
        srt = np.take_along_axis(probs, order, axis=-1)
        before = np.cumsum(srt, axis=-1) - srt          # mass of the classes ranked above
        # tied classes share the smallest "mass above" of their group
        same = np.concatenate([np.zeros(srt.shape[:-1] + (1,), bool),
                               srt[..., 1:] == srt[..., :-1]], axis=-1)
        group_start = np.where(same, 0.0, before)
        group_start = np.maximum.accumulate(np.where(same, -np.inf, group_start), axis=-1)
        # a mass equal to p up to the rounding of the sums (K eps) counts as reaching it
        keep_sorted = group_start < p - K * np.finfo(np.float64).eps
        keep = np.empty_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)
        out = np.where(keep, out, -np.inf).astype(dtype)
    out[bad] = np.nan
    return np.moveaxis(out, -1, ax)
