"""High-precision reference implementations (mpmath) and error measurement.

These functions are slow: they loop in Python over every entry and evaluate
with :mod:`mpmath` at a chosen number of decimal digits. They exist to *check*
the fast implementations, never to replace them.
"""

from __future__ import annotations

import mpmath
import numpy as np

__all__ = ["mp_softmax", "mp_log_softmax", "mp_logsumexp", "error_in_eps"]


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
