"""High-precision reference implementations (mpmath) and error measurement.

These functions are slow: they loop in Python over every entry and evaluate
with :mod:`mpmath` at a chosen number of decimal digits. They exist to *check*
the fast implementations, never to replace them.
"""

from __future__ import annotations

import mpmath
import numpy as np

__all__ = [
    "mp_softmax",
    "mp_log_softmax",
    "mp_logsumexp",
    "mp_softmax_jacobian",
    "mp_cross_entropy",
    "mp_cross_entropy_grad",
    "error_in_eps",
]


def _rows(z, axis):
    """Return ``z`` as float64-or-wider rows with the reduction axis last."""
    a = np.asarray(z)
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    return np.moveaxis(a, axis, -1)


def _mp_row(row):
    # Convert each binary float exactly: mpmath.mpf(float) is exact for
    # float16/32/64; longdouble goes through its exact decimal string.
    if row.dtype == np.longdouble and np.finfo(np.longdouble).nmant > 52:
        return [mpmath.mpf(np.format_float_scientific(v, unique=True)) for v in row]
    return [mpmath.mpf(float(v)) for v in row]


def _apply(z, axis, dps, row_fn, reduce):
    a = _rows(z, axis)
    flat = a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)
    out = []
    with mpmath.workdps(dps):
        for row in flat:
            out.append(row_fn(_mp_row(row)))
    if reduce:
        return np.array(out, dtype=object).reshape(a.shape[:-1])
    res = np.array(out, dtype=object).reshape(a.shape)
    return np.moveaxis(res, -1, axis)


def _shift_and_log_total(xs):
    """Return ``m = max(xs)`` and ``log(sum(exp(x - m)))``, both to working precision.

    The log of the sum is formed as ``log1p`` of the sum without one maximal
    term: with a dominant entry the sum is ``1 + 1e-170`` (say), which no fixed
    number of digits would hold, while its ``log1p`` form loses nothing.
    ``x - m`` is formed before anything is added to ``m``: adding ``log(total)``
    to a huge ``m`` first would round it away at any fixed precision.
    """
    m = max(xs)
    k = xs.index(m)
    rest = mpmath.fsum(mpmath.exp(x - m) for i, x in enumerate(xs) if i != k)
    return m, mpmath.log1p(rest)


def _lse(xs):
    m, log_total = _shift_and_log_total(xs)
    return m + log_total


def mp_logsumexp(z, axis=-1, dps=50):
    """Log-sum-exp of ``z`` along ``axis``, as an object array of ``mpmath.mpf``.

    Examples
    --------
    >>> import numpy as np
    >>> float(mp_logsumexp(np.array([0.0, 0.0]))) == float(np.log(2.0))
    True
    """
    return _apply(z, axis, dps, _lse, reduce=True)


def mp_log_softmax(z, axis=-1, dps=50):
    """Log-softmax of ``z`` along ``axis``, as an object array of ``mpmath.mpf``."""

    def row_fn(xs):
        m, log_total = _shift_and_log_total(xs)
        return [(x - m) - log_total for x in xs]

    return _apply(z, axis, dps, row_fn, reduce=False)


def mp_softmax(z, axis=-1, dps=50):
    """Softmax of ``z`` along ``axis``, as an object array of ``mpmath.mpf``.

    Examples
    --------
    >>> import numpy as np
    >>> p = mp_softmax(np.array([1.0, 1.0, 1.0, 1.0]))
    >>> [float(v) for v in p]
    [0.25, 0.25, 0.25, 0.25]
    """

    def row_fn(xs):
        m, log_total = _shift_and_log_total(xs)
        return [mpmath.exp((x - m) - log_total) for x in xs]

    return _apply(z, axis, dps, row_fn, reduce=False)


def _mp_probs_and_complements(xs):
    """``s_i`` and ``1 - s_i`` for one row, each to full relative precision.

    ``1 - s_i`` is formed as ``sum_{j != i} e_j / sum_j e_j``, never by
    subtraction: at any fixed precision ``1 - s_i`` would round to 0 once
    ``s_i`` is within ``10**-dps`` of 1.
    """
    m = max(xs)
    e = [mpmath.exp(x - m) for x in xs]
    total = mpmath.fsum(e)
    s = [v / total for v in e]
    comp = [mpmath.fsum(e[:i] + e[i + 1:]) / total for i in range(len(e))]
    return s, comp


def _mp_rows_of(z, dps, row_fn):
    a = _rows(z, -1)
    out = []
    with mpmath.workdps(dps):
        for idx in np.ndindex(a.shape[:-1]):
            out.append((idx, row_fn(_mp_row(a[idx]))))
    return a.shape, out


def mp_softmax_jacobian(z, dps=50):
    """Jacobian ``s_i (delta_ij - s_j)`` of softmax for every row of ``z`` (classes last).

    Returns an object array of ``mpmath.mpf`` of shape ``z.shape + (K,)``.

    Examples
    --------
    >>> import numpy as np
    >>> [[float(v) for v in row] for row in mp_softmax_jacobian(np.array([0.0, 0.0]))]
    [[0.25, -0.25], [-0.25, 0.25]]
    """
    shape, rows = _mp_rows_of(z, dps, _mp_probs_and_complements)
    K = shape[-1]
    out = np.empty(shape + (K,), dtype=object)
    with mpmath.workdps(dps):
        for idx, (s, comp) in rows:
            for i in range(K):
                for j in range(K):
                    out[idx + (i, j)] = s[i] * comp[i] if i == j else -s[i] * s[j]
    return out


def mp_cross_entropy_grad(logits, labels, dps=50):
    """Gradient ``(softmax(z) - onehot(c)) / N`` of the mean loss, as ``mpmath.mpf`` objects.

    Examples
    --------
    >>> import numpy as np
    >>> [float(v) for v in mp_cross_entropy_grad(np.array([[0.0, 0.0]]), np.array([1]))[0]]
    [0.5, -0.5]
    """
    labels = np.asarray(labels)
    shape, rows = _mp_rows_of(logits, dps, _mp_probs_and_complements)
    out = np.empty(shape, dtype=object)
    with mpmath.workdps(dps):
        n = max(labels.size, 1)
        for idx, (s, comp) in rows:
            c = int(labels[idx])
            row = list(s)
            row[c] = -comp[c]
            out[idx] = [v / n for v in row]
    return out


def mp_cross_entropy(logits, labels, dps=50):
    """Per-row loss ``-log softmax(z)_c`` (classes last), as an object array of ``mpmath.mpf``.

    Examples
    --------
    >>> import numpy as np
    >>> float(mp_cross_entropy(np.array([[0.0, 0.0]]), np.array([1]))[0]) == float(np.log(2))
    True
    """
    logp = mp_log_softmax(logits, axis=-1, dps=dps)
    labels = np.asarray(labels)
    out = np.empty(labels.shape, dtype=object)
    with mpmath.workdps(dps):
        for idx in np.ndindex(labels.shape):
            out[idx] = -logp[idx + (int(labels[idx]),)]
    return out


def error_in_eps(approx, exact, dtype=None, dps=60):
    """Largest relative error of ``approx`` against ``exact``, in units of eps.

    The relative error of each entry is ``|approx - exact| / max(|exact|, tiny)``,
    where ``tiny`` is the smallest *normal* number of ``dtype`` (by default the
    dtype of ``approx``): below it a floating-point format has fewer significant
    bits, so the floor turns the measure into an absolute one there. The result
    is divided by the dtype's machine epsilon (the spacing of numbers just above
    1), so 0.5 means "as good as correct rounding can be".

    The comparison is carried out with ``dps`` decimal digits (mpmath's default of
    15 would hide the errors being measured). Entries where ``exact`` is not
    finite must match exactly (same infinity, or
    both NaN); otherwise the error is ``inf``.

    Examples
    --------
    >>> import numpy as np
    >>> exact = mp_softmax(np.array([2.0, 1.0, 0.5]))
    >>> error_in_eps(np.array([0.629, 0.231, 0.140]), exact) > 1e10
    True
    >>> x = np.array([0.1])
    >>> error_in_eps(x, np.array([mpmath.mpf("0.1")], dtype=object)) <= 0.5
    True
    """
    approx = np.asarray(approx)
    dtype = np.dtype(dtype or approx.dtype)
    fi = np.finfo(dtype)
    ex = np.asarray(exact, dtype=object).ravel()
    ap = approx.ravel()
    if ex.shape != ap.shape:
        raise ValueError(f"shapes differ: approx {approx.shape}, exact {np.shape(exact)}")
    worst = 0.0
    with mpmath.workdps(dps):
        tiny = mpmath.mpf(float(fi.smallest_normal))
        eps = mpmath.mpf(float(fi.eps))
        approx_mp = _mp_row(ap)
        for a, a_mp, e in zip(ap, approx_mp, ex):
            e = mpmath.mpf(e)
            if not mpmath.isfinite(e):
                if (mpmath.isnan(e) and np.isnan(a)) or (not mpmath.isnan(e) and float(a) == float(e)):
                    continue
                return float("inf")
            if not np.isfinite(a):
                return float("inf")
            worst = max(worst, float(abs(a_mp - e) / max(abs(e), tiny) / eps))
    return worst
