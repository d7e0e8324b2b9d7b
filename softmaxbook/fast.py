"""Softmax for speed: a cache-blocked in-place version and the online normalizer.

Chapter 10 derives both. :func:`fast_softmax` trades the last bits of accuracy
for speed (it is as accurate as the textbook shifted formula); the online
normalizer of Milakov & Gimelshein (2018) computes the max and the sum in one
pass, with partial results that merge associatively, the idea behind blockwise
softmax in fused attention.
"""

from __future__ import annotations

import numpy as np

from ._rows import map_rows, unbuffered
from ._validation import HAS_EXTENDED, as_real_array, check_axis, real_array_no_copy
from .core import _QUIET

__all__ = ["fast_softmax", "online_normalizer", "merge_normalizers", "online_softmax"]

#: Default block size of :func:`fast_softmax`: large enough that NumPy's per-call
#: overhead is small, small enough to stay in the cache hierarchy (L2/L3).
FAST_BLOCK_BYTES = 2 * 1024 * 1024


def _result_dtype(dtype):
    """The dtype :func:`fast_softmax` returns for input of ``dtype`` (byte order kept)."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return np.dtype(np.float64)
    if dtype.itemsize == 2:
        return np.dtype(np.float32).newbyteorder(dtype.byteorder)
    return dtype


def _check_out(out, shape, dtype):
    if not isinstance(out, np.ndarray) or isinstance(out, np.matrix):
        raise TypeError(f"out must be a NumPy array (not a matrix), got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"out must have shape {shape} and dtype {dtype}, "
                         f"got shape {out.shape} and dtype {out.dtype}")
    if not out.flags.writeable:
        raise ValueError("out must be a writeable array (it is read-only)")


def _same_memory(a, b):
    """True if ``a`` and ``b`` are the same elements in the same layout (exact aliasing)."""
    ia, ib = a.__array_interface__, b.__array_interface__
    return (ia["data"][0] == ib["data"][0] and a.shape == b.shape
            and a.strides == b.strides and a.dtype == b.dtype)


#: A row whose sum of *unshifted* exponentials lies in ``[1, _DIRECT_MAX]`` needs
#: no shift (see :func:`_fast_rows`); the bound keeps ``1 / sum`` a normal number.
_DIRECT_MAX = {4: 2.0 ** 100, 8: 2.0 ** 1000}


def _direct_ok(s, itemsize):
    """Rows whose unshifted sum ``s`` proves that no shift was needed."""
    if itemsize not in _DIRECT_MAX:          # longdouble: always shift
        return np.zeros(s.shape, dtype=bool)
    return (s >= 1) & (s <= _DIRECT_MAX[itemsize])


def _shifted_rows(x, o):
    """The textbook shifted formula, row by row: ``exp(x - max) * (1 / sum)``."""
    r, K = x.shape
    # The row maxima: maximum.reduceat over the flat block has less per-row
    # overhead than max(axis=1) (short rows: half the time); both are exact.
    m = np.maximum.reduceat(x.reshape(-1), np.arange(0, r * K, K))[:, None]
    with unbuffered(K):
        np.subtract(x, m, out=o)
    np.exp(o, out=o)
    s = np.sum(o, axis=1, keepdims=True)
    np.reciprocal(s, out=s)
    with unbuffered(K):
        np.multiply(o, s, out=o)


def _fast_rows(x, o):
    """Softmax of the rows of the block ``x`` into ``o`` (``o`` must not overlap ``x``).

    The shift by the maximum exists only to keep ``exp`` in range, so each row
    first tries without it: ``o = exp(x)`` and its sum ``s``. If ``1 <= s <=
    2**100`` (float32; ``2**1000`` for float64), nothing overflowed (every term
    is at most ``s``), and nothing that matters underflowed (``s >= 1`` means
    ``log s >= 0``, so every exact result ``exp(x_j - log s) <= exp(x_j)`` is at
    most the term that was computed). Such a row is ``o * (1 / s)``, and more
    accurate than the shifted formula, whose exponent carries the rounding error
    of ``x - max``. Every other row (large or very negative logits, inf, NaN) is
    redone with its own maximum as the shift. Either way a row's result depends
    on that row alone.
    """
    np.exp(x, out=o)
    s = np.sum(o, axis=1, keepdims=True)
    ok = _direct_ok(s, o.dtype.itemsize)
    if not ok.all():
        redo = np.flatnonzero(~ok[:, 0])
        if redo[-1] - redo[0] + 1 == len(redo):
            # one run of consecutive rows: redo it through views (no copies)
            rows = slice(redo[0], redo[-1] + 1)
            _shifted_rows(x[rows], o[rows])
        else:
            # many scattered rows: gather them, so that the calls stay few
            xr = x[redo]
            orow = np.empty_like(xr, dtype=o.dtype)
            _shifted_rows(xr, orow)
            o[redo] = orow
        s[redo] = 1
    np.reciprocal(s, out=s)
    with unbuffered(o.shape[1]):
        np.multiply(o, s, out=o)


def _long_row(x, o, chunk, in_place):
    """Softmax of one row longer than a block: chunks of ``chunk`` entries stay in cache.

    Two passes over memory. As in :func:`_fast_rows`, the row is first tried
    without a shift: pass 1 writes ``exp(x)`` chunk by chunk and sums it, and if
    the sum proves no shift was needed, pass 2 scales by its reciprocal.
    Otherwise (and always in place) pass 1 writes, chunk by chunk, ``exp(x - m_c)``
    shifted by the chunk's own maximum ``m_c`` and sums it; pass 2 scales each
    chunk by ``exp(m_c - m) / total``, with ``m`` the row's maximum and
    ``total`` the merged sum (the online normalizer of chapter 10, applied to
    chunks). A row whose maximum is NaN or infinite, or that is all ``-inf``,
    is all NaN, as in :func:`softmaxbook.softmax`.
    """
    starts = range(0, len(x), chunk)
    wide = np.longdouble if o.dtype == np.longdouble else np.float64
    if not in_place and o.dtype.itemsize in _DIRECT_MAX:
        total = 0.0
        for start in starts:
            oc = o[start:start + chunk]
            np.exp(x[start:start + chunk], out=oc)
            total += float(np.sum(oc))
        if _direct_ok(np.array(total), o.dtype.itemsize):
            np.multiply(o, o.dtype.type(1.0 / total), out=o)
            return
    maxima, sums = [], []
    for start in starts:
        xc, oc = x[start:start + chunk], o[start:start + chunk]
        mc = np.max(xc)
        maxima.append(mc)
        if mc == -np.inf:          # an all -inf chunk contributes nothing
            sums.append(0.0)
            continue
        np.subtract(xc, mc, out=oc)
        np.exp(oc, out=oc)
        sums.append(np.sum(oc, dtype=wide))
    maxima = np.array(maxima, dtype=wide)
    m = np.max(maxima)
    if not np.isfinite(m):
        o[...] = np.nan
        return
    factors = np.exp(maxima - m)                      # 0 for all -inf chunks
    total = np.sum(np.array(sums, dtype=wide) * factors)
    for start, f in zip(starts, factors / total):
        oc = o[start:start + chunk]
        if f == 0:
            oc[...] = 0
        else:
            np.multiply(oc, o.dtype.type(f), out=oc)


def _fast_kernel(work, chunk, in_place):
    # In place, x is overwritten by exp(x) before a row could be redone, so
    # every row takes the shifted formula (its maximum is read first).
    rows = _shifted_rows if in_place or work.itemsize not in _DIRECT_MAX else _fast_rows

    def kernel(x, o):
        if x.dtype != work:           # float16 input: work (and return) in float32
            x = x.astype(work)
        if x.shape[1] > chunk:
            for xr, orow in zip(x, o):
                _long_row(xr, orow, chunk, in_place)
        else:
            rows(x, o)
    return kernel


def fast_softmax(z, axis=-1, out=None, block_bytes=FAST_BLOCK_BYTES):
    """Softmax computed for speed, block by block, optionally into ``out``.

    The rows (the slices along ``axis``) are processed in blocks of about
    ``block_bytes`` that stay in the cache, so the input is read from memory
    once and the result written once: the memory traffic of a copy. Every row
    is computed from its own values only:

    * a row is first exponentiated *without* a shift and summed; if the sum
      ``s`` lies in ``[1, 2**100]`` (float32; ``2**1000`` for float64), no
      term overflowed and none that matters underflowed, so the row is
      ``exp(z) * (1 / s)``: three passes in cache instead of five;
    * any other row (logits above about 60 or all negative, inf, NaN) is
      redone with the textbook shift by its own maximum,
      ``exp(z - max) * (1 / sum)``; in place (``out`` is ``z``) every row is.

    Rows longer than a block are done in chunks, each shifted by its own
    maximum, and the chunks merged as the online normalizer of chapter 10
    does: two passes over memory.

    Parameters
    ----------
    z : array_like of real numbers
        Logits. float32, float64 and longdouble keep their dtype; float16 is
        computed in (and returned as) float32; integers and booleans as
        float64. Any layout (strided, transposed, non-native byte order).
    axis : int, optional
        The axis to normalise along (default: the last).
    out : numpy.ndarray, optional
        A writeable array of the result's shape and dtype to write into;
        it may be ``z`` itself (in place). Reusing one avoids the cost of
        allocating, and first touching, a new output array. An ``out`` that
        overlaps ``z`` in any other way (a shifted or reversed view) is
        allowed: ``z`` is then copied first.
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
        For an ``out`` of the wrong shape or dtype, or read-only; for a
        ``block_bytes`` that is not a positive integer.

    Notes
    -----
    Accuracy is at least that of the textbook shifted formula
    ``exp(z - max) / sum`` in the result's dtype, plus one rounding for the
    reciprocal: on shifted rows the relative error of an entry grows like
    ``|z_i - max_i| * eps`` (about 30 eps for an entry 60 below its row's
    maximum in float32), the rounding error of the exponent; unshifted rows
    have an exact exponent and stay within a few eps. :func:`softmaxbook.softmax`
    stays within 0.5 eps (float32) or 2 eps (float64). Use this one where
    speed matters more than the last digits. Non-finite values follow the same
    rules as :func:`softmaxbook.softmax`, row by row. The input is never
    modified (unless ``out`` is the input).

    *Changed in 0.4.0*: rows used to be shifted by their block's maximum and
    recomputed when that lost their entries, which let a NaN or a large
    logit in one row change the rows next to it; and non-contiguous input
    could be overwritten. Each row is now computed on its own.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxbook import fast_softmax, softmax
    >>> z = np.random.default_rng(0).normal(size=(1000, 50)).astype(np.float32)
    >>> out = np.empty_like(z)
    >>> r = fast_softmax(z, out=out)
    >>> r is out and np.allclose(out, softmax(z), rtol=1e-5)
    True
    >>> fast_softmax([[0.0, 0.0], [-599.0, -749.0]])[1, 1]   # rows never share a shift
    np.float64(7.175095973164411e-66)
    """
    a, orig_dtype, _ = real_array_no_copy(z)
    if a.ndim == 0:
        raise np.exceptions.AxisError(f"softmax needs at least one axis; got a 0-d array ({a!r})")
    axis = check_axis(axis, a.ndim)
    if isinstance(block_bytes, bool) or not isinstance(block_bytes, (int, np.integer)) \
            or block_bytes < 1:
        raise ValueError(f"block_bytes must be a positive integer, got {block_bytes!r}")
    dtype = _result_dtype(orig_dtype)
    work = dtype.newbyteorder("=")
    in_place = False
    if out is not None:
        _check_out(out, a.shape, dtype)
        if np.may_share_memory(a, out):
            if _same_memory(a, out):
                in_place = True
            else:
                a = a.copy()          # partial overlap: read from a private copy
    if a.shape[axis] == 0:
        return out if out is not None else np.empty(a.shape, dtype)
    chunk = max(1, block_bytes // work.itemsize)
    with np.errstate(**_QUIET):
        return map_rows(a, axis, _fast_kernel(work, chunk, in_place), dtype, out=out,
                        itemsize=work.itemsize, block_bytes=block_bytes)


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
        Maxima and sums of the two parts (broadcastable). Computed in float64,
        or in longdouble if any of them is longdouble.

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
    vals = [as_real_array(v, name=n) for v, n in zip((m1, d1, m2, d2), ("m1", "d1", "m2", "d2"))]
    w = np.result_type(np.float64, *vals)     # float64, or longdouble if given
    m1, d1, m2, d2 = (v.astype(w, copy=False) for v in vals)
    try:
        np.broadcast_shapes(m1.shape, d1.shape, m2.shape, d2.shape)
    except ValueError:
        raise ValueError("m1, d1, m2 and d2 must broadcast to one shape, got shapes "
                         f"{m1.shape}, {d1.shape}, {m2.shape}, {d2.shape}") from None
    with np.errstate(invalid="ignore", over="ignore"):
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
        ``m`` and ``d``, with the reduced axis kept (length 1): float64, or
        longdouble for longdouble logits.

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
    a = as_real_array(z, native=False)
    if a.ndim == 0:
        raise np.exceptions.AxisError(f"softmax needs at least one axis; got a 0-d array ({a!r})")
    axis = check_axis(axis, a.ndim)
    _check_block(block)
    x = np.moveaxis(a, axis, -1)
    with np.errstate(**_QUIET):
        m, d = _online_rows(x, block, _work_dtype(a.dtype.newbyteorder("=")))
    return np.moveaxis(m, -1, axis), np.moveaxis(d, -1, axis)


#: Work space per block of rows of :func:`online_softmax` (larger than the
#: default: its first pass loops over column blocks in Python).
_ONLINE_BLOCK_BYTES = 4 * 1024 * 1024

#: Columns written per step by the second pass of :func:`online_softmax`.
_PASS2_COLUMNS = 32 * 1024


def _check_block(block):
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive integer, got {block!r}")


def _work_dtype(dtype):
    return np.dtype(np.longdouble if dtype == np.longdouble else np.float64)


def _online_rows(x, block, work):
    """``(m, d)`` of ``x`` along its last axis, blocks of ``block`` columns at a time.

    Only one block of columns is converted to ``work`` at a time (C order, so
    that each row's sum is the same whatever the input's layout). The running
    pair is kept in extended precision where the platform has it: every merge
    rescales the running sum by ``exp(m_old - m_new)``, one rounding per block,
    and over thousands of blocks those roundings would add up to tens of eps
    in float64. Returned in ``work``.
    """
    running = np.dtype(np.longdouble) if HAS_EXTENDED or work == np.longdouble else work
    m = np.full(x.shape[:-1] + (1,), -np.inf, dtype=running)
    d = np.zeros_like(m)
    for start in range(0, x.shape[-1], block):
        mb, db = _normalizer_of(x[..., start:start + block].astype(work, order="C"), -1)
        m, d = merge_normalizers(m, d, mb.astype(running), db.astype(running))
    return m.astype(work), d.astype(work)


def online_softmax(z, axis=-1, block=1024):
    """Softmax from the online normalizer: one pass for ``(m, d)``, one to write the result.

    Parameters
    ----------
    z : array_like of real numbers
        Logits; float16/32/64 and longdouble keep their dtype (work is in
        float64, or longdouble for longdouble input).
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
    Within a few eps of the two-pass shifted formula, whatever the row's
    length: rescaling the running sum by ``exp(m_old - m_new)`` adds one
    rounding per block, so the running pair is kept in extended precision
    (where the platform has it) and those roundings do not accumulate. Rows
    are processed in blocks that stay in the cache, each row on its own; a row
    with a NaN, a ``+inf`` or only ``-inf`` is all NaN, as in
    :func:`softmaxbook.softmax`.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxbook import online_softmax, softmax
    >>> z = np.random.default_rng(1).normal(size=(3, 1000))
    >>> bool(np.allclose(online_softmax(z, block=7), softmax(z), rtol=1e-13))
    True
    """
    a, dtype, native = real_array_no_copy(z)
    if a.ndim == 0:
        raise np.exceptions.AxisError(f"softmax needs at least one axis; got a 0-d array ({a!r})")
    axis = check_axis(axis, a.ndim)
    _check_block(block)
    work = _work_dtype(native)
    if a.shape[axis] == 0:
        return np.empty(a.shape, dtype=dtype)

    def kernel(x, o):
        m, d = _online_rows(x, block, work)
        # a NaN, +inf or all -inf row has a non-finite maximum: NaN, as in softmax
        shift = np.where(np.isfinite(m), m, np.nan)
        for start in range(0, x.shape[1], _PASS2_COLUMNS):
            cols = slice(start, start + _PASS2_COLUMNS)
            o[:, cols] = np.exp(x[:, cols].astype(work) - shift) / d

    with np.errstate(**_QUIET):
        return map_rows(a, axis, kernel, dtype, itemsize=3 * work.itemsize,
                        block_bytes=_ONLINE_BLOCK_BYTES)
