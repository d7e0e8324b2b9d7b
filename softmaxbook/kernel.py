"""A compiled softmax kernel (numba), with a vectorised exponential written for the book.

Chapter 10 shows why a NumPy softmax cannot reach the memory limit on a CPU: every NumPy
call is one more pass, and `np.exp` alone costs about a copy. A compiled row kernel fuses the
steps: per row, one pass finds the maximum, one writes and sums the exponentials, one scales.
What makes it fast is a *vectorised* exponential: numba's `math.exp` is a scalar call into the
C library, several nanoseconds per entry. :func:`exp_poly` is written in plain arithmetic that
LLVM turns into vector instructions:

* range reduction ``x = n ln 2 + r`` with ``|r| <= ln(2)/2`` (Cody-Waite: ``ln 2`` split in a
  high part with trailing zeros and a low part, so ``n * ln2_hi`` is exact);
* a Taylor polynomial for ``e^r`` (degree 13 in float64, 7 in float32), evaluated by Horner
  with fused multiply-adds;
* ``2^n`` built from its exponent bits (a bit cast, free in a vector register).

The row maximum is found through integer keys (for IEEE numbers, ``bits`` for non-negative and
``bits ^ 0x7FF...F`` for negative numbers is increasing), because numba's floating-point max
reduction does not vectorise while an integer one does; the sum of the exponentials is
accumulated in the same loop that computes them.

Its accuracy in ulps, measured against mpmath, is stated in :data:`EXP_ULP` and tested.
Arguments below the normal range of ``2^n`` are handed to the scalar ``math.exp`` (rare in
softmax: they are entries more than about 708 (float64) or 87 (float32) below their row's
maximum).

If numba is not installed or cannot compile, :func:`softmax_kernel` says so once and falls back
to :func:`softmaxbook.fast_softmax`.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ._rows import map_rows
from ._validation import check_axis, real_array_no_copy
from .core import _QUIET, softmax

__all__ = ["softmax_kernel", "exp_poly", "HAVE_NUMBA", "EXP_ULP"]

#: Bound on the error of :func:`exp_poly` in ulps, from measurements against mpmath on the
#: arguments a shifted softmax uses (``[-708, 0]`` float64, ``[-87, 0]`` float32: at most 0.77
#: on 7000 points each); ``tests/test_kernel.py`` checks it.
EXP_ULP = {"float64": 0.8, "float32": 0.8}

try:  # pragma: no cover - the import itself is tested by whether HAVE_NUMBA is True
    import numba
    from numba import njit, prange, types
    from numba.extending import intrinsic

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False

if HAVE_NUMBA:
    @intrinsic
    def _as_f64(typingctx, x):
        """Reinterpret the bits of an int64 as a float64 (free in a vector register)."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.float64))
        return types.float64(types.int64), codegen

    @intrinsic
    def _as_f32(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.float32))
        return types.float32(types.int32), codegen

_LN2_HI = 6.93147180369123816490e-01     # ln 2 with its last 32 bits zero: n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
_LN2_HI_F = np.float32(0.693145751953125)  # float32: 12 significant bits
_LN2_LO_F = np.float32(1.428606765330187e-06)
_INV_LN2_F = np.float32(1.4426950408889634)
_MIN_F64 = -708.0                            # 2^n normal for n >= -1022
_MIN_F32 = np.float32(-87.0)                 # 2^n normal for n >= -126

if HAVE_NUMBA:
    @njit(cache=True, fastmath={"contract", "reassoc"})
    def _exp_row_f64(row, m, out):
        """``out = exp(row - m)`` for ``row <= m`` (float64), vectorised; returns
        ``(sum of out, number of entries below the normal range of 2^n)``."""
        n_ = row.shape[0]
        low = 0
        for j in range(n_):
            x = row[j] - m
            low += 1 if x < _MIN_F64 else 0
            x = x if x > _MIN_F64 else _MIN_F64
            n = np.floor(x * _INV_LN2 + 0.5)
            r = (x - n * _LN2_HI) - n * _LN2_LO
            p = 1.0 / 6227020800.0
            p = p * r + 1.0 / 479001600.0
            p = p * r + 1.0 / 39916800.0
            p = p * r + 1.0 / 3628800.0
            p = p * r + 1.0 / 362880.0
            p = p * r + 1.0 / 40320.0
            p = p * r + 1.0 / 5040.0
            p = p * r + 1.0 / 720.0
            p = p * r + 1.0 / 120.0
            p = p * r + 1.0 / 24.0
            p = p * r + 1.0 / 6.0
            p = p * r + 0.5
            p = p * r + 1.0
            p = p * r + 1.0
            out[j] = p * _as_f64((np.int64(n) + 1023) << 52)
        return _tree_sum(out), low

    @njit(cache=True, fastmath={"contract", "reassoc"})
    def _exp_row_f32(row, m, out):
        """``out = exp(row - m)`` for ``row <= m`` (float32 arithmetic), vectorised."""
        n_ = row.shape[0]
        low = 0
        acc = 0.0                                  # the sum in float64: rounding-free for float32
        for j in range(n_):
            x = row[j] - m
            low += 1 if x < _MIN_F32 else 0
            x = x if x > _MIN_F32 else _MIN_F32
            n = np.floor(x * _INV_LN2_F + np.float32(0.5))
            r = (x - n * _LN2_HI_F) - n * _LN2_LO_F
            p = np.float32(1.0 / 40320.0)
            p = p * r + np.float32(1.0 / 5040.0)
            p = p * r + np.float32(1.0 / 720.0)
            p = p * r + np.float32(1.0 / 120.0)
            p = p * r + np.float32(1.0 / 24.0)
            p = p * r + np.float32(1.0 / 6.0)
            p = p * r + np.float32(0.5)
            p = p * r + np.float32(1.0)
            p = p * r + np.float32(1.0)
            e = p * _as_f32((np.int32(n) + 127) << 23)
            out[j] = e
            acc += np.float64(e)
        return acc, low

    _MASK64 = np.int64(0x7FFFFFFFFFFFFFFF)
    _MASK32 = np.int32(0x7FFFFFFF)

    @njit(cache=True)
    def _max_f64(row, one):
        """The row maximum through integer keys (an integer max reduction vectorises).

        For IEEE numbers the map ``bits -> bits if bits >= 0 else bits ^ 0x7FF...F`` is
        increasing, so the largest key belongs to the largest number; a NaN with the sign bit
        clear wins, which is what we want (the row becomes NaN).
        """
        b = row.view(np.int64)
        hi = np.int64(-9223372036854775808)
        for j in range(b.shape[0]):
            v = b[j]
            k = v if v >= 0 else v ^ _MASK64
            hi = k if k > hi else hi
        one[0] = hi if hi >= 0 else hi ^ _MASK64
        return one.view(np.float64)[0]

    @njit(cache=True)
    def _max_f32(row, one):
        b = row.view(np.int32)
        hi = np.int32(-2147483648)
        for j in range(b.shape[0]):
            v = b[j]
            k = v if v >= 0 else v ^ _MASK32
            hi = k if k > hi else hi
        one[0] = hi if hi >= 0 else hi ^ _MASK32
        return one.view(np.float32)[0]

    @njit(cache=True, fastmath={"reassoc"})
    def _block_sum(row, start, stop):
        acc = 0.0
        for j in range(start, stop):
            acc += row[j]
        return acc

    @njit(cache=True)
    def _tree_sum(row):
        """Sum of blocks of 256 (vectorised), then of the block sums pairwise: an error
        of about (8 + log2(K / 256)) roundings, like NumPy's pairwise sum."""
        n = row.shape[0]
        nb = (n + 255) // 256
        part = np.empty(nb)
        for b in range(nb):
            part[b] = _block_sum(row, b * 256, min(n, (b + 1) * 256))
        while nb > 1:
            half = nb // 2
            for b in range(half):
                part[b] = part[2 * b] + part[2 * b + 1]
            if nb % 2:
                part[half] = part[nb - 1]
                nb = half + 1
            else:
                nb = half
        return part[0]

    @njit(cache=True, fastmath={"reassoc"})
    def _sum64(row):
        """Sum of a float32 row, accumulated in float64."""
        acc = 0.0
        for j in range(row.shape[0]):
            acc += np.float64(row[j])
        return acc

    def _make_rows(exp_row, max_row, sum_row, bits_dtype):
        @njit(parallel=True)
        def rows(x, out, floor, nchunks):
            n, K = x.shape
            per = (n + nchunks - 1) // nchunks
            for c in prange(nchunks):                    # one contiguous run of rows per thread
                one = np.empty(1, bits_dtype)            # scratch, allocated once per run
                for i in range(c * per, min(n, (c + 1) * per)):
                    row = x[i]
                    o = out[i]
                    m = max_row(row, one)
                    if not (m < np.inf and m > -np.inf):     # NaN, +inf, or only -inf: NaN
                        for j in range(K):
                            o[j] = np.nan
                        continue
                    # the textbook shift, row - m, inside the exponential's loop
                    s, low = exp_row(row, m, o)
                    if low > 0:                              # entries below 2^n's normal range
                        for j in range(K):
                            dj = row[j] - m
                            if dj < floor:
                                o[j] = math.exp(dj)
                        s = sum_row(o)
                    inv = o.dtype.type(1) / s
                    for j in range(K):
                        o[j] = o[j] * inv
        return rows

    _ROWS = {np.dtype(np.float64): _make_rows(_exp_row_f64, _max_f64, _tree_sum, np.int64),
             np.dtype(np.float32): _make_rows(_exp_row_f32, _max_f32, _sum64, np.int32)}


def exp_poly(x):
    """The kernel's vectorised exponential, for ``x <= 0`` (float32 or float64 arrays).

    Returns ``exp(x)`` to within :data:`EXP_ULP` ulps; used by :func:`softmax_kernel`, exposed
    so that its accuracy can be measured.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxbook.kernel import exp_poly, HAVE_NUMBA
    >>> x = -np.linspace(0, 700, 5)
    >>> bool(np.allclose(exp_poly(x), np.exp(x), rtol=1e-15, atol=0)) if HAVE_NUMBA else True
    True
    """
    x = np.ascontiguousarray(x)
    if x.dtype not in (np.float32, np.float64) or x.ndim != 1:
        raise TypeError("exp_poly takes a 1-d float32 or float64 array")
    if not HAVE_NUMBA:
        return np.exp(x)
    out = np.empty_like(x)
    if x.dtype == np.float64:
        _exp_row_f64(x, 0.0, out)
        floor = _MIN_F64
    else:
        _exp_row_f32(x, np.float32(0), out)
        floor = _MIN_F32
    low = x < floor
    out[low] = np.exp(x[low])
    return out


_warned = False

#: Bytes per block of rows handed to the compiled kernel (2-8 MiB measured best).
_BLOCK_BYTES = 4 * 1024 * 1024


def softmax_kernel(z, axis=-1, out=None, threads=1):
    """Softmax by a compiled row kernel (numba), at or near the speed of memory.

    Per row: the maximum, then the shifted exponentials written and summed, then one scaling
    by the reciprocal of the sum, the row staying in cache between the passes. Rows are
    spread over ``threads`` threads.

    Parameters
    ----------
    z : array_like of real numbers
        Logits. float32 and float64 run in the kernel; float16 is computed in float32 and
        rounded back; other inputs (longdouble, integers, booleans) take
        :func:`softmaxbook.softmax`'s path and dtype rules.
    axis : int, optional
        The axis to normalise along.
    out : numpy.ndarray, optional
        A writeable array of the result's shape and dtype.
    threads : int, optional
        Number of threads (rows in parallel).

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    TypeError, numpy.exceptions.AxisError, ValueError
        As for :func:`softmaxbook.fast_softmax`; ``ValueError`` also for ``threads < 1``.

    Notes
    -----
    Accuracy: that of the textbook shifted formula ``exp(z - max) / sum``, with an
    exponential accurate to :data:`EXP_ULP` ulps and one more rounding for the reciprocal.
    Special values follow :func:`softmaxbook.softmax` row by row. The input is never modified
    (unless ``out`` is the input). Without numba it warns once and uses
    :func:`softmaxbook.fast_softmax`.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxbook import softmax
    >>> z = np.random.default_rng(0).normal(size=(100, 30))
    >>> bool(np.allclose(softmax_kernel(z), softmax(z), rtol=1e-14))
    True
    """
    global _warned
    from .fast import _check_out, _same_memory, fast_softmax

    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if not HAVE_NUMBA:
        if not _warned:
            warnings.warn("numba is not available: softmax_kernel uses fast_softmax", stacklevel=2)
            _warned = True
        return fast_softmax(z, axis=axis, out=out)
    a, dtype, native = real_array_no_copy(z)
    if a.ndim == 0:
        raise np.exceptions.AxisError(f"softmax needs at least one axis; got a 0-d array ({a!r})")
    axis = check_axis(axis, a.ndim)
    if native not in (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)):
        res = softmax(a, axis=axis)
        if out is not None:
            _check_out(out, a.shape, res.dtype)
            out[...] = res
            return out
        return res
    if out is not None:
        _check_out(out, a.shape, dtype)
        if np.may_share_memory(a, out) and not _same_memory(a, out):
            a = a.copy()
    if a.shape[axis] == 0:
        return out if out is not None else np.empty(a.shape, dtype)
    work = np.dtype(np.float32) if native.itemsize <= 4 else np.dtype(np.float64)
    nchunks = int(threads)
    floor = _MIN_F64 if work == np.float64 else float(_MIN_F32)

    def kernel(x, o):
        if x.dtype != work or np.may_share_memory(x, o):
            x = x.astype(work)       # (in place, the fix-up pass must still see the logits)
        if o.dtype != work or not o.flags.c_contiguous:
            tmp = np.empty(x.shape, work)
            _ROWS[work](x, tmp, floor, nchunks)
            o[...] = tmp
        else:
            _ROWS[work](x, o, floor, nchunks)

    previous = numba.get_num_threads()
    numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))
    try:
        with np.errstate(**_QUIET):
            return map_rows(a, axis, kernel, dtype, out=out, itemsize=work.itemsize,
                            block_bytes=_BLOCK_BYTES)
    finally:
        numba.set_num_threads(previous)
