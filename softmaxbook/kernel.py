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
accumulated in the same loop that computes them. The keys of the *next* chunk (or row) are read
block by block between the blocks of this one's exponentials, so that its memory traffic
overlaps their arithmetic, and every loop asks LLVM for 512-bit vectors where the machine has
them (by default LLVM stops at 256 bits on Intel parts with AVX-512).

Its accuracy in ulps, measured against mpmath, is stated in :data:`EXP_ULP` and tested.
Arguments below the normal range of ``2^n`` are handed to the scalar ``math.exp`` (rare in
softmax: they are entries more than about 708 (float64) or 87 (float32) below their row's
maximum).

If numba is not installed or cannot compile, :func:`softmax_kernel` says so once and falls back
to :func:`softmaxbook.fast_softmax`.
"""

from __future__ import annotations

import contextlib
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
    def _wide(typingctx):
        """Ask LLVM for vectors as wide as the machine has (512 bits with AVX-512): by
        default it stops at 256 bits on Intel parts with AVX-512."""
        def codegen(context, builder, signature, args):
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
            return context.get_dummy_value()
        return types.none(), codegen

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

_FM = {"contract", "reassoc"}      # fused multiply-adds; sums may be reordered (vectorised)
_MASK64 = np.int64(0x7FFFFFFFFFFFFFFF)
_MASK32 = np.int32(0x7FFFFFFF)

#: Entries per block of the partial sums (each block summed in vector lanes; the block sums
#: added pairwise), and per chunk of a long row (the chunk stays in the L1/L2 cache between
#: its maximum and its exponentials).
_SUM_BLOCK = 256
_CHUNK = 4096

if HAVE_NUMBA:
    # ---- the exponential, fused with its sum ------------------------------------------------
    # ``clamp`` chooses the variant for rows whose smallest entry lies below the normal range
    # of 2^n: arguments are clamped there (and counted); the caller redoes them exactly.

    @njit(cache=True, fastmath=_FM)
    def _expsum_f64(row, o, m, start, stop, clamp):
        _wide()
        acc = 0.0
        low = 0.0
        if clamp:
            for j in range(np.uint64(start), np.uint64(stop)):
                x = row[j] - m
                low += 1.0 if x < _MIN_F64 else 0.0
                x = x if x > _MIN_F64 else _MIN_F64
                e = _exp_f64(x)
                o[j] = e
                acc += e
        else:
            for j in range(np.uint64(start), np.uint64(stop)):
                e = _exp_f64(row[j] - m)
                o[j] = e
                acc += e
        return acc, low

    @njit(cache=True, fastmath=_FM)
    def _expsum_f32(row, o, m, start, stop, clamp):
        _wide()
        acc = np.float32(0)                    # at most _SUM_BLOCK terms: blocks add in float64
        low = np.float32(0)
        if clamp:
            for j in range(np.uint64(start), np.uint64(stop)):
                x = row[j] - m
                low += np.float32(1) if x < _MIN_F32 else np.float32(0)
                x = x if x > _MIN_F32 else _MIN_F32
                e = _exp_f32(x)
                o[j] = e
                acc += e
        else:
            for j in range(np.uint64(start), np.uint64(stop)):
                e = _exp_f32(row[j] - m)
                o[j] = e
                acc += e
        return np.float64(acc), np.float64(low)

    @njit(cache=True, fastmath=_FM, inline="always")
    def _exp_f64(x):
        """e^x for ``_MIN_F64 <= x <= 0``: x = n ln 2 + r, Taylor degree 13 in r, 2^n by bits."""
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
        return p * _as_f64((np.int64(n) + 1023) << 52)

    @njit(cache=True, fastmath=_FM, inline="always")
    def _exp_f32(x):
        """e^x for ``_MIN_F32 <= x <= 0`` in float32 arithmetic (Taylor degree 7)."""
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
        return p * _as_f32((np.int32(n) + np.int32(127)) << np.int32(23))

    @njit(cache=True, fastmath=_FM)
    def _expsum_libm(row, o, m, start, stop, clamp):
        """The same with the C library's scalar exp (for the chapter's ablation)."""
        acc = 0.0
        for j in range(np.uint64(start), np.uint64(stop)):
            e = math.exp(row[j] - m)
            o[j] = e
            acc += e
        return acc, 0.0

    # ---- maximum and minimum through integer keys --------------------------------------------
    # For IEEE numbers ``bits if bits >= 0 else bits ^ 0x7FF...F`` is increasing, and an
    # integer max/min reduction vectorises where numba's floating-point one does not. A NaN
    # with the sign bit clear has the largest key, one with it set the smallest.

    @njit(cache=True)
    def _keys_f64(b, start, stop):
        _wide()
        hi = np.int64(-9223372036854775808)
        lo = np.int64(9223372036854775807)
        for j in range(np.uint64(start), np.uint64(stop)):
            v = b[j]
            k = v if v >= 0 else v ^ _MASK64
            hi = k if k > hi else hi
            lo = k if k < lo else lo
        return hi, lo

    @njit(cache=True)
    def _keys_f32(b, start, stop):
        _wide()
        hi = np.int32(-2147483648)
        lo = np.int32(2147483647)
        for j in range(np.uint64(start), np.uint64(stop)):
            v = b[j]
            k = v if v >= 0 else np.int32(v ^ _MASK32)    # (numba widens int32 ops)
            hi = k if k > hi else hi
            lo = k if k < lo else lo
        return hi, lo

    @njit(cache=True, fastmath=_FM)
    def _scale(o, f, start, stop):
        _wide()
        for j in range(np.uint64(start), np.uint64(stop)):
            o[j] = o[j] * f

    @njit(cache=True, fastmath=_FM)
    def _divide(o, s, start, stop):
        _wide()
        for j in range(np.uint64(start), np.uint64(stop)):
            o[j] = o[j] / s

    @njit(cache=True)
    def _pairwise(part, n):
        """Sum of ``part[:n]`` pairwise (overwrites it): log2(n) roundings."""
        while n > 1:
            half = n // 2
            for b in range(half):
                part[b] = part[2 * b] + part[2 * b + 1]
            if n % 2:
                part[half] = part[n - 1]
                n = half + 1
            else:
                n = half
        return part[0] if n == 1 else 0.0

    def _make_rows(expsum, keys, ftype, itype, mask, floor):
        """The row kernel for one dtype (``ftype``, with integer keys of ``itype``)."""
        bitcast = _as_f64 if ftype is np.float64 else _as_f32

        @njit(cache=True, inline="always")
        def value(k):
            return bitcast(itype(k if k >= 0 else k ^ mask))

        @njit(cache=True)
        def segment(row, o, a, e, khi, klo, nbits, na, ne, part, scratch):
            """Shifted exponentials of ``row[a:e]`` into ``o[a:e]``, given the keys of its
            maximum and minimum; on the way, the keys of the next segment ``nbits[na:ne]``
            (read from memory while this one computes). Returns (max, sum, next keys):
            a NaN maximum if the row must be all NaN (a NaN or +inf entry), -inf if every
            entry is -inf (then ``o[a:e]`` is zero and the sum 0)."""
            m = value(khi)
            mn = value(klo)
            if m != m or m == np.inf or mn != mn or m == -np.inf:
                nh, nl = keys(nbits, na, ne)
                if m == -np.inf and mn == -np.inf:
                    for j in range(a, e):
                        o[j] = 0.0
                    return m, 0.0, nh, nl
                return np.nan, 0.0, nh, nl
            w = e - a
            fused = min(w, ne - na)             # entries whose neighbour key is fused in
            nb = (w + _SUM_BLOCK - 1) // _SUM_BLOCK
            nh, nl = keys(nbits, na + fused, ne)
            if mn - m >= floor:                 # the common case: no clamping needed
                for b in range(nb):
                    s0 = b * _SUM_BLOCK
                    s1 = min(w, s0 + _SUM_BLOCK)
                    f1 = max(s0, min(s1, fused))
                    part[b], _ = expsum(row, o, m, a + s0, a + s1, False)
                    if f1 > s0:
                        h2, l2 = keys(nbits, na + s0, na + f1)
                        nh = h2 if h2 > nh else nh
                        nl = l2 if l2 < nl else nl
                return m, _pairwise(part, nb), nh, nl
            # Entries below the normal range of 2^n: clamped in the vector loop, then redone
            # by the scalar exp. The logits are kept in scratch, since o may be row.
            h2, l2 = keys(nbits, na, na + fused)
            nh = h2 if h2 > nh else nh
            nl = l2 if l2 < nl else nl
            for j in range(w):
                scratch[j] = row[a + j]
            expsum(scratch, o[a:e], m, 0, w, True)
            for j in range(w):
                d = scratch[j] - m
                if d < floor:
                    o[a + j] = math.exp(d)
            for b in range(nb):
                s0 = a + b * _SUM_BLOCK
                acc = 0.0
                for j in range(s0, min(e, s0 + _SUM_BLOCK)):
                    acc += o[j]
                part[b] = acc
            return m, _pairwise(part, nb), nh, nl

        @njit(cache=True)
        def finish(o, ms, ss, nc, K, divide):
            """Scale a row whose chunks have maxima ``ms`` and sums ``ss``: one chunk is
            divided by its sum; several are merged as the online normalizer does."""
            M = -np.inf
            bad = False
            for q in range(nc):
                bad = bad or ms[q] != ms[q]
                M = ms[q] if ms[q] > M else M
            if bad or M == -np.inf:             # NaN or +inf entry, or only -inf
                for j in range(K):
                    o[j] = np.nan
                return
            if nc == 1:
                if divide:
                    _divide(o, ftype(ss[0]), 0, K)
                else:
                    _scale(o, ftype(1.0 / ss[0]), 0, K)
                return
            d = 0.0
            for q in range(nc):
                ms[q] = math.exp(ms[q] - M)    # each chunk's scale relative to the row max
                d += ss[q] * ms[q]
            for q in range(nc):
                _scale(o, ftype(ms[q] / d), q * _CHUNK, min(K, (q + 1) * _CHUNK))

        @njit(cache=True)
        def run(x, bx, out, r0, r1, part, scratch, ms, ss, divide):
            """Rows ``r0:r1``, chunk by chunk; the keys of each chunk (its maximum and
            minimum) are found while the previous chunk's exponentials are computed."""
            K = x.shape[1]
            nc = (K + _CHUNK - 1) // _CHUNK
            khi, klo = keys(bx[r0], 0, min(K, _CHUNK))
            for i in range(r0, r1):
                for q in range(nc):
                    a = q * _CHUNK
                    e = min(K, a + _CHUNK)
                    ni, na, ne = i, 0, 0           # the next chunk: in this row or the next
                    if q + 1 < nc:
                        na, ne = e, min(K, e + _CHUNK)
                    elif i + 1 < r1:
                        ni, ne = i + 1, min(K, _CHUNK)
                    ms[q], ss[q], khi, klo = segment(x[i], out[i], a, e, khi, klo, bx[ni],
                                                     na, ne, part, scratch)
                finish(out[i], ms, ss, nc, K, divide)

        @njit(cache=True)
        def some_chunks(row, bits, o, q0, q1, part, scratch, ms, ss):
            """Chunks ``q0:q1`` of one row (the same pipeline, within the row)."""
            K = row.shape[0]
            khi, klo = keys(bits, q0 * _CHUNK, min(K, (q0 + 1) * _CHUNK))
            for q in range(q0, q1):
                a = q * _CHUNK
                e = min(K, a + _CHUNK)
                na, ne = 0, 0
                if q + 1 < q1:
                    na, ne = e, min(K, e + _CHUNK)
                ms[q], ss[q], khi, klo = segment(row, o, a, e, khi, klo, bits, na, ne,
                                                 part, scratch)

        @njit(parallel=True, cache=True)
        def rows(x, out, nchunks, divide):
            n, K = x.shape
            nc = (K + _CHUNK - 1) // _CHUNK
            bx = x.view(itype)
            if n < nchunks and nc > 1:
                # Fewer rows than threads: the chunks of each row are shared out, and their
                # (max, sum) pairs merged in the same order as one thread would (same bits).
                per_q = (nc + nchunks - 1) // nchunks
                ms = np.empty(nc)
                ss = np.empty(nc)
                for i in range(n):
                    for c in prange(nchunks):
                        part = np.empty(_CHUNK // _SUM_BLOCK)
                        scratch = np.empty(_CHUNK, ftype)
                        q0 = c * per_q
                        q1 = min(nc, q0 + per_q)
                        if q0 < q1:
                            some_chunks(x[i], bx[i], out[i], q0, q1, part, scratch, ms, ss)
                    d = 0.0
                    M = -np.inf
                    bad = False
                    for q in range(nc):
                        bad = bad or ms[q] != ms[q]
                        M = ms[q] if ms[q] > M else M
                    if bad or M == -np.inf:
                        out[i, :] = np.nan
                        continue
                    for q in range(nc):
                        ms[q] = math.exp(ms[q] - M)
                        d += ss[q] * ms[q]
                    for c in prange(nchunks):
                        for q in range(c * per_q, min(nc, (c + 1) * per_q)):
                            _scale(out[i], ftype(ms[q] / d), q * _CHUNK,
                                   min(K, (q + 1) * _CHUNK))
                return
            per = (n + nchunks - 1) // nchunks
            for c in prange(nchunks):                # one contiguous run of rows per thread
                part = np.empty(_CHUNK // _SUM_BLOCK)   # scratch, allocated once per run
                scratch = np.empty(min(K, _CHUNK), ftype)
                ms = np.empty(nc)
                ss = np.empty(nc)
                r0 = c * per
                r1 = min(n, r0 + per)
                if r0 < r1:
                    run(x, bx, out, r0, r1, part, scratch, ms, ss, divide)

        @njit(cache=True)
        def rows_one(x, out, divide):
            """``rows`` on one thread, without a parallel region: no thread of numba's pool
            is woken (which costs microseconds per call, and much more when the machine's
            other CPUs are busy)."""
            n, K = x.shape
            if n == 0:
                return
            nc = (K + _CHUNK - 1) // _CHUNK
            run(x, x.view(itype), out, 0, n, np.empty(_CHUNK // _SUM_BLOCK),
                np.empty(min(K, _CHUNK), ftype), np.empty(nc), np.empty(nc), divide)

        def call(x, out, nchunks, divide):
            if nchunks == 1:
                rows_one(x, out, divide)
            else:
                rows(x, out, nchunks, divide)
        return call

    _ROWS = {np.dtype(np.float64): _make_rows(_expsum_f64, _keys_f64,
                                              np.float64, np.int64, _MASK64, _MIN_F64),
             np.dtype(np.float32): _make_rows(_expsum_f32, _keys_f32,
                                              np.float32, np.int32, _MASK32,
                                              float(_MIN_F32))}
    #: A variant for chapter 10's ablation (not part of the API): the C library's scalar exp.
    _ROWS_LIBM = {np.dtype(np.float64): _make_rows(_expsum_libm, _keys_f64, np.float64,
                                                   np.int64, _MASK64, _MIN_F64)}


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
        _expsum_f64(x, out, 0.0, 0, x.shape[0], True)
        floor = _MIN_F64
    else:
        _expsum_f32(x, out, np.float32(0), 0, x.shape[0], True)
        floor = _MIN_F32
    low = x < floor
    out[low] = np.exp(x[low])
    return out


_warned = False


@contextlib.contextmanager
def _thread_pool(want):
    """Make at least ``want`` of numba's threads available for the call, then restore.

    The compiled loops split their work into exactly ``threads`` parts (``prange`` over the
    parts), so one thread needs no change of numba's setting, which costs microseconds."""
    if want <= 1:
        yield
        return
    previous = numba.get_num_threads()
    if previous >= want:
        yield
        return
    numba.set_num_threads(want)
    try:
        yield
    finally:
        numba.set_num_threads(previous)

#: Bytes per block of rows handed to the compiled kernel (2-8 MiB measured best).
_BLOCK_BYTES = 4 * 1024 * 1024


def softmax_kernel(z, axis=-1, out=None, threads=1, *, _exp="poly", _divide=False):
    """Softmax by a compiled row kernel (numba), at or near the speed of memory.

    Per row: the maximum (found with the minimum, which tells whether any entry falls below
    the fast exponential's range), then the shifted exponentials written and summed in the
    same loop, then one scaling by the reciprocal of the sum, the row staying in cache between
    the passes. Rows longer than a chunk (4096 entries) are done chunk by chunk, each shifted
    by its own maximum and merged as the online normalizer of chapter 10 does, so the input
    is read from memory once. Rows are spread over ``threads`` threads.

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
        Number of threads: runs of rows in parallel, or, when there are fewer rows than
        threads, the chunks of each row, merged as the online normalizer does.

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

    rows_fn = _ROWS[work] if _exp == "poly" else _ROWS_LIBM[work]
    want = min(nchunks, numba.config.NUMBA_NUM_THREADS)

    # The common case, C-contiguous native rows along the last axis into a separate (or new)
    # C-contiguous output, goes straight to the compiled loops: a call then costs a few
    # microseconds instead of the tens that the general blocking machinery takes.
    if (a.dtype == work and axis == a.ndim - 1 and a.flags.c_contiguous
            and (out is None or (out.flags.c_contiguous and out.dtype == work
                                 and not np.may_share_memory(a, out)))):
        res = np.empty(a.shape, work) if out is None else out
        K = a.shape[-1]
        with _thread_pool(want):
            rows_fn(a.reshape(-1, K), res.reshape(-1, K), nchunks, _divide)
        return res

    def kernel(x, o):
        # In place, the block is copied first: the compiled loops then see no aliasing
        # and take the same vector path (and give the same bits) as out of place.
        if x.dtype != work or np.may_share_memory(x, o):
            x = x.astype(work)
        if o.dtype != work or not o.flags.c_contiguous:
            tmp = np.empty(x.shape, work)
            rows_fn(x, tmp, nchunks, _divide)
            o[...] = tmp
        else:
            rows_fn(x, o, nchunks, _divide)

    # C-contiguous native rows are handed over whole (a quarter of the array at a time);
    # other layouts go through blocks that are converted to contiguous rows.
    direct = (a.dtype == work and axis == a.ndim - 1 and a.flags.c_contiguous
              and not (out is not None and np.may_share_memory(a, out)))
    block = 1 << 62 if direct else _BLOCK_BYTES

    with _thread_pool(want), np.errstate(**_QUIET):
        return map_rows(a, axis, kernel, dtype, out=out, itemsize=work.itemsize,
                        block_bytes=block)
