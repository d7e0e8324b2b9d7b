"""Softmax for speed: a cache-blocked in-place version and the online normalizer.

Chapter 10 derives both. :func:`fast_softmax` trades the last bits of accuracy
for speed (it is as accurate as the textbook shifted formula); the online
normalizer of Milakov & Gimelshein (2018) computes the max and the sum in one
pass, with partial results that merge associatively, the idea behind blockwise
softmax in fused attention.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_real_array, check_axis
from .core import _QUIET, _rows_per_block

__all__ = ["fast_softmax", "online_normalizer", "merge_normalizers", "online_softmax"]

#: Default block size of :func:`fast_softmax`: large enough that NumPy's per-call
#: overhead is small, small enough to stay in the cache hierarchy (L2/L3).
FAST_BLOCK_BYTES = 1024 * 1024

# After shifting a whole block by its maximum, a row whose sum of exponentials
# is below this has lost (or may have lost) its largest terms to underflow; such
# rows are recomputed with their own maximum. exp(-60) and exp(-600) leave every
# kept term far inside the normal range.
_SMALL_SUM = {np.dtype(np.float32): np.float32(np.exp(-60.0)), np.dtype(np.float64): np.exp(-600.0)}


def _check_out(out, shape, dtype):
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"out must have shape {shape} and dtype {dtype}, "
                         f"got shape {out.shape} and dtype {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be a writeable C-contiguous array")


def _row_block(x, o, s):
    """Softmax of the rows of the block ``x`` into ``o``; ``s`` is (rows, 1) scratch."""
    hi = np.max(x)
    np.subtract(x, hi if np.isfinite(hi) else 0.0, out=o)   # one shift for the whole block
    np.exp(o, out=o)
    np.sum(o, axis=1, keepdims=True, out=s)
    small = _SMALL_SUM[o.dtype]
    if not np.isfinite(hi) or not s.min() >= small:
        # Rows far below the block maximum (or with inf/NaN): shift each by its own max.
        bad = np.flatnonzero(~(s[:, 0] >= small)) if np.isfinite(hi) else np.arange(len(x))
        xr = x[bad]
        e = np.exp(xr - np.max(xr, axis=1, keepdims=True))
        o[bad] = e
        s[bad] = np.sum(e, axis=1, keepdims=True)
    np.reciprocal(s, out=s)
    np.multiply(o, s, out=o)


def _long_row(x, o, chunk):
    """Softmax of one row longer than a block: chunks of ``chunk`` entries stay in cache."""
    hi = np.max(x)
    if not np.isfinite(hi):
        e = np.exp(x - np.max(x))
        o[...] = e / np.sum(e)
        return
    total = 0.0
    for start in range(0, len(x), chunk):
        oc = o[start:start + chunk]
        np.subtract(x[start:start + chunk], hi, out=oc)
        np.exp(oc, out=oc)
        total += float(np.sum(oc))
    np.multiply(o, o.dtype.type(1.0 / total), out=o)


def fast_softmax(z, axis=-1, out=None, block_bytes=FAST_BLOCK_BYTES):
    """Softmax computed for speed, block by block, optionally into ``out``.

    For C-contiguous input along the last axis the rows are processed in
    blocks of about ``block_bytes`` that stay in the cache, so the input is read
    from memory once and the result written once: the memory traffic of a copy.
    Within a block every row is shifted by the block's maximum (one scalar
    subtraction instead of a per-row reduction and broadcast); rows whose sum
    of exponentials then comes out below ``exp(-60)`` (float32) or
    ``exp(-600)`` (float64), or that hold inf or NaN, are redone with their own
    maximum. Then the row sums and a multiplication by their reciprocals.
    Rows longer than a block are done in chunks: one pass for the maximum, one
    for the exponentials and their sum, one to scale.

    Parameters
    ----------
    z : array_like of real numbers
        Logits. float32 and float64 keep their dtype; float16, integers and
        booleans are computed in (and returned as) float32 / float64.
    axis : int, optional
        The axis to normalise along (default: the last).
    out : numpy.ndarray, optional
        A C-contiguous array of the result's shape and dtype to write into;
        it may be ``z`` itself (in place). Reusing one avoids the cost of
        allocating, and first touching, a new output array.
    block_bytes : int, optional
        Target size of a block of rows.

    Returns
    -------
    numpy.ndarray
        The softmax, in ``out`` if given.

    Raises
    ------
    TypeError, numpy.exceptions.AxisError
        As for :func:`softmaxbook.softmax`; ``TypeError`` also for an ``out``
        that is not an array.
    ValueError
        For an ``out`` of the wrong shape or dtype, or not C-contiguous.

    Notes
    -----
    Accuracy is that of the textbook shifted formula: the relative error of an
    entry grows like ``|z_i - shift| * eps`` (about 30 eps for an entry 60 below
    the shift in float32; ``softmaxbook.softmax`` stays within 0.5 eps).
    Use it where speed matters more than the last digits. Non-finite values
    follow the same rules as :func:`softmaxbook.softmax`.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxbook import fast_softmax, softmax
    >>> z = np.random.default_rng(0).normal(size=(1000, 50)).astype(np.float32)
    >>> out = np.empty_like(z)
    >>> r = fast_softmax(z, out=out)
    >>> r is out and np.allclose(out, softmax(z), rtol=1e-5)
    True
    """
    a = as_real_array(z)
    if a.ndim == 0:
        raise np.exceptions.AxisError(f"softmax needs at least one axis; got a 0-d array ({a!r})")
    axis = check_axis(axis, a.ndim)
    dtype = np.dtype(np.float32) if a.dtype == np.float16 else a.dtype
    if dtype not in _SMALL_SUM:
        dtype = np.dtype(np.float64)
    if out is not None:
        _check_out(out, a.shape, dtype)
    if a.shape[axis] == 0:
        return out if out is not None else np.empty(a.shape, dtype)
    with np.errstate(**_QUIET):
        if axis != a.ndim - 1 or not a.flags.c_contiguous or a.dtype != dtype:
            # Work on a contiguous copy with the axis last (slower, same result).
            x = np.ascontiguousarray(np.moveaxis(a, axis, -1), dtype=dtype)
            res = fast_softmax(x, axis=-1, out=x, block_bytes=block_bytes)
            res = np.moveaxis(res, -1, axis)
            if out is None:
                return np.ascontiguousarray(res)
            out[...] = res
            return out
        if out is None:
            out = np.empty(a.shape, dtype)
        K = a.shape[-1]
        x2, o2 = a.reshape(-1, K), out.reshape(-1, K)
        if K * dtype.itemsize > block_bytes:
            for xr, orow in zip(x2, o2):
                _long_row(xr, orow, max(1, block_bytes // dtype.itemsize))
            return out
        rows = _rows_per_block(K, dtype.itemsize, block_bytes)
        s = np.empty((min(rows, len(x2)), 1), dtype)
        for start in range(0, len(x2), rows):
            _row_block(x2[start:start + rows], o2[start:start + rows], s[:len(x2[start:start + rows])])
        return out


def _normalizer_of(x, axis):
    """(max, sum of exp(x - max)) of ``x`` along ``axis``, keepdims, float64 or wider."""
    m = np.max(x, axis=axis, keepdims=True)
    # all -inf gives (m, d) = (-inf, 0), the neutral element of the merge
    d = np.sum(np.exp(x - np.where(np.isfinite(m), m, 0.0)), axis=axis, keepdims=True)
    return m, d


def merge_normalizers(m1, d1, m2, d2):
    r"""Merge two partial normalizers ``(m, d)`` of disjoint parts of a row.

    For parts with maxima ``m1``, ``m2`` and sums ``d1 = sum exp(x - m1)``,
    ``d2 = sum exp(x - m2)``, the whole has

    .. math:: m = \max(m_1, m_2), \qquad d = d_1 e^{m_1 - m} + d_2 e^{m_2 - m}.

    The operation is associative and commutative, with ``(-inf, 0)`` as its
    neutral element, so parts can be merged in any grouping (chapter 10).

    Parameters
    ----------
    m1, d1, m2, d2 : array_like
        Maxima and sums of the two parts (broadcastable).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The merged maximum and sum.

    Examples
    --------
    >>> import numpy as np
    >>> m, d = merge_normalizers(1.0, 1.0, 0.0, 1.0)
    >>> float(m), round(float(d), 6)      # exp(1) + exp(0), written relative to exp(1)
    (1.0, 1.367879)
    >>> merge_normalizers(-np.inf, 0.0, 2.0, 3.0)
    (array(2.), array(3.))
    """
    m1, d1, m2, d2 = (np.asarray(v, dtype=np.float64) for v in (m1, d1, m2, d2))
    with np.errstate(invalid="ignore"):
        m = np.maximum(m1, m2)
        # exp(m_i - m), with the convention exp(-inf - (-inf)) = 1 for empty parts
        w1 = np.where(m1 == m, 1.0, np.exp(m1 - m))
        w2 = np.where(m2 == m, 1.0, np.exp(m2 - m))
        return np.asarray(m), np.asarray(d1 * w1 + d2 * w2)


def online_normalizer(z, axis=-1, block=1024):
    """The max and the sum of ``exp(z - max)`` along ``axis``, in one pass over blocks.

    The axis is read in consecutive blocks of ``block`` entries; each block's
    own ``(max, sum)`` is merged into the running pair with
    :func:`merge_normalizers`. With ``block=1`` this is the element-by-element
    recurrence of Milakov & Gimelshein (2018).

    Parameters
    ----------
    z : array_like of real numbers
        Logits.
    axis : int, optional
        The axis to reduce.
    block : int, optional
        Entries per block (a positive integer).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``m`` and ``d``, float64, with the reduced axis kept (length 1).

    Raises
    ------
    TypeError, numpy.exceptions.AxisError
        As for :func:`softmaxbook.softmax`.
    ValueError
        If ``block`` is not a positive integer.

    Examples
    --------
    >>> import numpy as np
    >>> m, d = online_normalizer([1.0, 2.0, 3.0], block=1)
    >>> float(m[0]), round(float(d[0]), 6)
    (3.0, 1.503215)
    """
    a = as_real_array(z)
    if a.ndim == 0:
        raise np.exceptions.AxisError(f"softmax needs at least one axis; got a 0-d array ({a!r})")
    axis = check_axis(axis, a.ndim)
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive integer, got {block!r}")
    x = np.moveaxis(a, axis, -1).astype(np.float64 if a.dtype != np.longdouble else a.dtype)
    m = np.full(x.shape[:-1] + (1,), -np.inf)
    d = np.zeros_like(m)
    with np.errstate(**_QUIET):
        for start in range(0, x.shape[-1], block):
            mb, db = _normalizer_of(x[..., start:start + block], -1)
            m, d = merge_normalizers(m, d, mb, db)
    return np.moveaxis(m, -1, axis), np.moveaxis(d, -1, axis)


def online_softmax(z, axis=-1, block=1024):
    """Softmax from the online normalizer: one pass for ``(m, d)``, one to write the result.

    Parameters
    ----------
    z : array_like of real numbers
        Logits; float16/32/64 keep their dtype (work is in float64).
    axis : int, optional
        The axis to normalise along.
    block : int, optional
        Entries per block of the first pass (see :func:`online_normalizer`).

    Returns
    -------
    numpy.ndarray
        ``exp(z - m) / d``, same shape and dtype as ``z`` (float64 for integers).

    Raises
    ------
    TypeError, numpy.exceptions.AxisError, ValueError
        As for :func:`online_normalizer`.

    Notes
    -----
    Equal to the two-pass shifted formula to within a few eps: rescaling the
    running sum by ``exp(m_old - m_new)`` adds one rounding per block.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxbook import online_softmax, softmax
    >>> z = np.random.default_rng(1).normal(size=(3, 1000))
    >>> bool(np.allclose(online_softmax(z, block=7), softmax(z), rtol=1e-13))
    True
    """
    a = as_real_array(z)
    m, d = online_normalizer(a, axis=axis, block=block)
    with np.errstate(**_QUIET):
        safe = np.where(np.isfinite(m), m, np.where(np.isnan(m), np.nan, 0.0))
        out = np.exp(a.astype(np.float64 if a.dtype != np.longdouble else a.dtype) - safe) / d
        # +inf logits: NaN, as in softmax
        out = np.where(np.isposinf(m), np.nan, out)
    dtype = a.dtype if a.dtype.kind == "f" else np.float64
    return out.astype(dtype, copy=False)
