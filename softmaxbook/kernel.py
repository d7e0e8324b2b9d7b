"""A compiled softmax kernel (numba), with a vectorised exponential written for the book.

Chapter 10 shows why a NumPy softmax cannot reach the memory limit on a CPU: every NumPy
call is one more pass, and `np.exp` alone costs about a copy. A compiled row kernel fuses the
steps: per row, one pass finds the maximum, one writes and sums the exponentials, one scales.
What makes it fast is a *vectorised* exponential: numba's `math.exp` is a scalar call into the
C library, several nanoseconds per entry. :func:`exp_poly` is written in plain arithmetic that
LLVM turns into vector instructions:

* range reduction ``x = n ln 2 + r`` with ``|r| <= ln(2)/2`` (Cody-Waite: ``ln 2`` split in a
  high part with trailing zeros and a low part, so ``n * ln2_hi`` is exact);
* a polynomial for ``e^r`` (degree 11 in float64, 6 in float32, interpolating e^r at
  Chebyshev nodes), evaluated by Horner with fused multiply-adds;
* ``2^n`` built from its exponent bits (a bit cast, free in a vector register).

The row maximum is found through integer keys (for IEEE numbers, ``bits`` for non-negative and
``bits ^ 0x7FF...F`` for negative numbers is increasing), because numba's floating-point max
reduction does not vectorise while an integer one does; the sum of the exponentials is
accumulated in the same loop that computes them, and every loop asks LLVM for 512-bit vectors
where the machine has them (by default LLVM stops at 256 bits on Intel parts with AVX-512).

On one core the arithmetic takes about as long as the memory traffic (chapter 10), so the
kernel keeps the memory busy while it computes. The exponentials of a row go to a buffer of the
thread's own, one row long, in blocks of ``_SUM_BYTES`` (1 KiB); between two blocks it

* prefetches the logits one chunk ahead (non-temporal prefetch instructions, which nothing
  waits for), so that the next chunk arrives while this one computes;
* writes out the previous row's block at the same place of the buffer, scaled, just before
  this row's exponentials overwrite it: the writes of one row are spread over the arithmetic
  of the next.

When the output is large (at least ``_STREAM_BYTES``) those writes are *streaming*
(non-temporal) stores: they go to memory without first reading each line of the output into
the cache (write-allocate), which an ordinary store does and which costs a third stream of
traffic. The row loops work on borrowed arrays (no reference counting per call), and new
outputs are 64-byte aligned so that the streaming stores cover whole cache lines.

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

#: Bound on the error of :func:`exp_poly` in ulps, from measurements on the arguments a
#: shifted softmax uses (``[-708, 0]`` float64, ``[-87, 0]`` float32): float64 at most 0.86
#: against mpmath on 27 500 points (NumPy's ``exp``: 0.65); float32 at most 1.08 on 5
#: million points against the float64 exponential (NumPy's float32 ``exp``: 2.1).
#: ``tests/test_kernel.py`` checks it.
EXP_ULP = {"float64": 0.9, "float32": 1.1}

try:  # pragma: no cover - the import itself is tested by whether HAVE_NUMBA is True
    import numba
    from llvmlite import ir
    from numba import njit, prange, types
    from numba.core import cgutils
    from numba.extending import intrinsic, overload

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
    def _stream(typingctx, arr, idx, val):
        """``arr[idx] = val`` as a streaming (non-temporal) store: the line goes to memory
        without first being read into the cache (a plain store of a line that is not in the
        cache reads it first: write-allocate, a third stream of traffic beside the read and
        the write). The callers start every such loop at a 64-byte boundary, so that the
        vector stores LLVM makes of it are aligned (which the instruction requires)."""
        def codegen(context, builder, signature, args):
            aryty, idxty, valty = signature.args
            ary = context.make_array(aryty)(context, builder, args[0])
            i = context.cast(builder, args[1], idxty, types.intp)
            ptr = builder.gep(ary.data, [i], inbounds=True)
            v = context.cast(builder, args[2], valty, aryty.dtype)
            store = builder.store(v, ptr, align=64)
            one = ir.Constant(ir.IntType(32), 1)
            store.set_metadata("nontemporal", builder.module.add_metadata([one]))
            return context.get_dummy_value()
        return types.none(arr, idx, val), codegen

    @intrinsic
    def _borrow(typingctx, arr):
        """The same array without its reference count (a null meminfo). Numba counts a
        reference for every array handed to a function and gives it back on return: two
        atomic instructions each, which cost more than the work on a short row. The
        borrowed view is used only while the caller holds the array itself."""
        def codegen(context, builder, signature, args):
            aryty = signature.args[0]
            src = context.make_array(aryty)(context, builder, args[0])
            dst = context.make_array(aryty)(context, builder)
            for field in ("nitems", "itemsize", "data", "shape", "strides"):
                setattr(dst, field, getattr(src, field))
            dst.meminfo = cgutils.get_null_value(dst.meminfo.type)
            dst.parent = cgutils.get_null_value(dst.parent.type)
            return dst._getvalue()
        return arr(arr), codegen

    @intrinsic
    def _sfence(typingctx):
        """Order the streaming stores before anything that follows (they are weakly
        ordered): each thread calls it when its rows are written. A sequentially consistent
        fence (``mfence`` on x86) orders them on every target LLVM knows."""
        def codegen(context, builder, signature, args):
            builder.fence("seq_cst")
            return context.get_dummy_value()
        return types.none(), codegen

    @intrinsic
    def _prefetch(typingctx, arr, idx):
        """Ask for the cache line of ``arr[idx]``: a hint that no instruction waits for, so
        that the line arrives while arithmetic goes on. Non-temporal (``prefetchnta`` on
        x86): the line is wanted soon and only once, so it should not push other data out
        of the outer caches (measured: with two threads on rows of 10^6 entries, an
        ordinary prefetch cost 10-20 % more, the row buffers being crowded out of L3)."""
        def codegen(context, builder, signature, args):
            aryty, idxty = signature.args
            ary = context.make_array(aryty)(context, builder, args[0])
            i = context.cast(builder, args[1], idxty, types.intp)
            ptr = builder.gep(ary.data, [i])
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(0), i32(1)])  # read, NTA, data
            return context.get_dummy_value()
        return types.none(arr, idx), codegen

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
#: Coefficients of e^r on |r| <= ln(2)/2 for float32 (degree 6): the polynomial that
#: interpolates e^r at the 7 Chebyshev nodes of the interval (close to the minimax one),
#: computed in 50-digit arithmetic and rounded to float32; its own relative error is below
#: 2.1e-8, about a third of an ulp (degree 7 of the Taylor series: 5e-9, one FMA more).
#: ``tests/test_kernel.py`` measures the whole exponential against mpmath. (float64's
#: coefficients, degree 11, are written out in ``_exp_f64``.)
_C32 = tuple(np.float32(c) for c in (1.0, 1.0, 0.5, 0.16666415, 0.04166635, 0.008375126,
                                     0.0013941108))
_MIN_F64 = -708.0                            # 2^n normal for n >= -1022
_MIN_F32 = np.float32(-87.0)                 # 2^n normal for n >= -126

_FM = {"contract", "reassoc"}      # fused multiply-adds; sums may be reordered (vectorised)

#: Bytes per block of the partial sums (each block summed in vector lanes; the block sums
#: added pairwise): 256 float32 or 128 float64 entries. Between the blocks the kernel issues
#: its prefetches and writes out the previous row, so the block size sets how finely memory
#: traffic and arithmetic interleave (measured: 1 KiB is best; 4 KiB took 30-40 % longer).
_SUM_BYTES = 1024
#: The most entries a block can have (float32's).
_SUM_BLOCK = _SUM_BYTES // 4
#: Entries per chunk of a long row (the chunk stays in the L1/L2 cache between its maximum
#: and its exponentials): a multiple of every block.
_CHUNK = 4096
#: Rows longer than this (in bytes) write their exponentials into the output row itself
#: and scale them there: a separate row buffer that large would not stay in the cache,
#: and its fresh pages would cost page faults at every call.
_BUFFER_BYTES = 16 * 1024 * 1024
#: The least distance (in entries) at which the entries ahead are prefetched: enough to
#: cover the time memory takes to answer (about 100 ns: a few KiB at tens of GB/s).
_PREFETCH = 2048

if HAVE_NUMBA:
    # ---- what differs between float32 and float64, chosen by the argument's type ---------
    # (module-level functions, not closures over the dtype: numba keys its on-disk cache
    # on a closure's captured values, and captured dispatchers pickle differently in every
    # process, so closures were compiled again by every process.)

    @intrinsic
    def _cast(typingctx, v, arr):
        """``v`` converted to the dtype of the array ``arr``."""
        dt = arr.dtype

        def codegen(context, builder, signature, args):
            return context.cast(builder, args[0], signature.args[0], dt)
        return dt(v, arr), codegen

    @intrinsic
    def _from_key(typingctx, k):
        """The float of the same width whose bits are the integer ``k``."""
        ft = types.float32 if k.bitwidth == 32 else types.float64

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(ft))
        return ft(k), codegen

    @intrinsic
    def _floor_of(typingctx, arr):
        """The smallest argument of the vectorised exp for the array's dtype."""
        dt = arr.dtype
        value = float(_MIN_F32) if dt == types.float32 else _MIN_F64

        def codegen(context, builder, signature, args):
            return context.get_constant(dt, value)
        return dt(arr), codegen

    @intrinsic
    def _key_range(typingctx, b):
        """The smallest and largest integer of the key array's dtype (the largest is also
        the mask that turns a negative float's bits into its key)."""
        it = b.dtype
        tup = types.UniTuple(it, 2)
        top = (1 << (it.bitwidth - 1)) - 1

        def codegen(context, builder, signature, args):
            values = [context.get_constant(it, -top - 1), context.get_constant(it, top)]
            return context.make_tuple(builder, tup, values)
        return tup(b), codegen

    def _exp(v):  # pragma: no cover - replaced by its overload in compiled code
        raise NotImplementedError

    @overload(_exp, inline="always", jit_options={"fastmath": _FM})
    def _exp_overload(v):
        if v == types.float32:
            return lambda v: _exp_f32(v)
        return lambda v: _exp_f64(v)

    # ---- the exponential, fused with its sum ------------------------------------------------
    # ``x[xo:xo+n]`` shifted by ``m``, exponentiated into ``o[oo:oo+n]`` and summed.
    # ``clamp`` chooses the variant for rows whose smallest entry lies below the normal range
    # of 2^n: arguments are clamped there (and counted); the caller redoes them exactly.
    # Sums of float32 are kept in float32 (at most _SUM_BLOCK terms; blocks add in float64).
    # A block holds _SUM_BYTES of entries (256 float32, 128 float64): measured, blocks of
    # 1 KiB interleave the prefetches and the writes with the arithmetic best.

    # Not inlined: the one-thread and the split paths then call the same machine code, so
    # the vectorised sum has the same order in both (the arrays the row loops hand it are
    # borrowed, so a call counts no reference).
    @njit(cache=True, fastmath=_FM)
    def _expsum(x, xo, o, oo, m, n, clamp):
        _wide()
        xo = np.uint64(xo)
        oo = np.uint64(oo)
        floor = _floor_of(x)
        zero = _cast(0.0, x)
        one = _cast(1.0, x)
        acc = zero
        low = zero
        if clamp:
            for j in range(np.uint64(0), np.uint64(n)):
                v = x[xo + j] - m
                low += one if v < floor else zero
                v = v if v > floor else floor
                e = _exp(v)
                o[oo + j] = e
                acc += e
        else:
            for j in range(np.uint64(0), np.uint64(n)):
                e = _exp(x[xo + j] - m)
                o[oo + j] = e
                acc += e
        return np.float64(acc), np.float64(low)

    @njit(cache=True, fastmath=_FM, inline="always")
    def _exp_f64(x):
        """e^x for ``_MIN_F64 <= x <= 0``: x = n ln 2 + r, degree 11 in r (the polynomial
        that interpolates e^r at the 12 Chebyshev nodes of |r| <= ln(2)/2, computed in
        50-digit arithmetic, its coefficients rounded: relative error below 1.7e-17, a
        sixth of an ulp; degree 13 of the Taylor series is no more accurate in the end and
        costs two more FMAs per entry), 2^n by bits."""
        n = np.floor(x * _INV_LN2 + 0.5)
        r = (x - n * _LN2_HI) - n * _LN2_LO
        p = 2.5110037605963777e-08
        p = p * r + 2.763263963904103e-07
        p = p * r + 2.755724091857897e-06
        p = p * r + 2.4801485482328494e-05
        p = p * r + 0.00019841269890047113
        p = p * r + 0.0013888888952314775
        p = p * r + 0.008333333333319601
        p = p * r + 0.0416666666664881
        p = p * r + 0.1666666666666668
        p = p * r + 0.5000000000000019
        p = p * r + 1.0
        p = p * r + 1.0
        return p * _as_f64((np.int64(n) + 1023) << 52)

    @njit(cache=True, fastmath=_FM, inline="always")
    def _exp_f32(x):
        """e^x for ``_MIN_F32 <= x <= 0`` in float32 arithmetic (degree 6, :data:`_C32`)."""
        n = np.floor(x * _INV_LN2_F + np.float32(0.5))
        r = (x - n * _LN2_HI_F) - n * _LN2_LO_F
        p = _C32[6]
        p = p * r + _C32[5]
        p = p * r + _C32[4]
        p = p * r + _C32[3]
        p = p * r + np.float32(0.5)
        p = p * r + np.float32(1.0)
        p = p * r + np.float32(1.0)
        return p * _as_f32((np.int32(n) + np.int32(127)) << np.int32(23))

    @njit(cache=True, fastmath=_FM)
    def _expsum_libm(x, xo, o, oo, m, n, clamp):
        """The same with the C library's scalar exp (for the chapter's ablation)."""
        xo = np.uint64(xo)
        oo = np.uint64(oo)
        acc = 0.0
        for j in range(np.uint64(0), np.uint64(n)):
            e = math.exp(x[xo + j] - m)
            o[oo + j] = e
            acc += e
        return acc, 0.0

    # ---- maximum and minimum through integer keys --------------------------------------------
    # For IEEE numbers ``bits if bits >= 0 else bits ^ 0x7FF...F`` is increasing, and an
    # integer max/min reduction vectorises where numba's floating-point one does not. A NaN
    # with the sign bit clear has the largest key, one with it set the smallest.

    @njit(cache=True, inline="always")
    def _keys(b, start, stop):
        """The largest and smallest key of ``b[start:stop]`` (the bits of a float array)."""
        _wide()
        kmin, kmax = _key_range(b)
        hi = kmin
        lo = kmax
        mask = kmax
        for j in range(np.uint64(start), np.uint64(stop)):
            v = b[j]
            k = v if v >= 0 else _cast(v ^ mask, b)     # (numba widens int32 operations)
            hi = k if k > hi else hi
            lo = k if k < lo else lo
        return hi, lo

    @njit(cache=True, inline="always")
    def _value(k, b):
        """The float whose key is ``k``."""
        mask = _key_range(b)[1]
        return _from_key(k if k >= 0 else _cast(k ^ mask, b))

    @njit(cache=True, fastmath=_FM)
    def _scale(o, f, start, stop):
        _wide()
        for j in range(np.uint64(start), np.uint64(stop)):
            o[j] = o[j] * f

    @njit(cache=True, fastmath=_FM, inline="always")
    def _emit(sb, so, out, oo, n, f, divide, stream, mis):
        """``out[oo:oo+n] = sb[so:so+n] * f`` (or ``/ f`` if ``divide``), with streaming
        stores if ``stream``: ordinary ones up to the first 64-byte boundary of ``out``
        (whose first entry lies ``mis`` entries past one), streaming ones after it."""
        _wide()
        so = np.uint64(so)
        oo = np.uint64(oo)
        n = np.uint64(n)
        if stream:
            v = np.uint64(64 // out.itemsize)
            h = min(n, (v - ((np.uint64(mis) + oo) & (v - 1))) & (v - 1))  # v: 2^k
            if h == 0:                  # on a line already (the common case): no head
                if divide:
                    for j in range(np.uint64(0), n):
                        _stream(out, oo + j, sb[so + j] / f)
                else:
                    for j in range(np.uint64(0), n):
                        _stream(out, oo + j, sb[so + j] * f)
                return
        else:
            h = n
        if divide:
            for j in range(np.uint64(0), h):
                out[oo + j] = sb[so + j] / f
            for j in range(h, n):
                _stream(out, oo + j, sb[so + j] / f)
        else:
            for j in range(np.uint64(0), h):
                out[oo + j] = sb[so + j] * f
            for j in range(h, n):
                _stream(out, oo + j, sb[so + j] * f)

    @njit(cache=True, fastmath=_FM)
    def _sum(v, start, stop):
        """Sum of ``v[start:stop]`` (in vector lanes), not inlined for the same reason."""
        _wide()
        acc = 0.0
        for j in range(np.uint64(start), np.uint64(stop)):
            acc += v[j]
        return acc

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

    # ---- rows ---------------------------------------------------------------------------------
    # Every array is flat (rows of ``K`` entries one after another) and every position an
    # index into it: a row is never sliced into a view. The per-row functions are inlined
    # and work on borrowed arrays (see _borrow): no reference is counted per row.

    @njit(cache=True, inline="always")
    def _fetch(x, a, e, lim):
        """Prefetch the cache lines of ``x[a:min(e, lim)]`` (no loads wait for them)."""
        for p in range(a, min(e, lim), 64 // x.itemsize):
            _prefetch(x, p)

    @njit(cache=True, fastmath=_FM, inline="always")
    def _segment(x, b, sb, a, e, so, part, libm, dist, lim, out, pso, poo, pf, pend,
                 pdiv, stream, mis):
        """Shifted exponentials of ``x[a:e]`` into ``sb[so:so+e-a]``; returns (max, sum):
        a NaN maximum if the row must be all NaN (a NaN or +inf entry), -inf if every entry
        is -inf (then the exponentials are zero and the sum 0).

        Block by block, while it computes, two memory streams run beside the arithmetic:
        the entries ``dist`` ahead (``x[a+dist:e+dist]``, up to ``lim``) are prefetched,
        so that the next chunk is in the cache when its turn comes; and, if ``pend``, the
        previous row's exponentials in the same place of the buffer, ``sb[pso:]``, are
        written out to ``out[poo:]`` times ``pf`` (divided by it if ``pdiv``), each block
        just before this row's exponentials overwrite it."""
        w = e - a
        khi, klo = _keys(b, a, e)
        m = _value(khi, b)
        mn = _value(klo, b)
        floor = _floor_of(x)
        fine = not (m != m or m == np.inf or mn != mn or m == -np.inf)
        if fine and mn - m >= floor:        # the common case: no clamping needed
            B = _SUM_BYTES // x.itemsize
            nb = (w + B - 1) // B
            for k in range(nb):
                s0 = k * B
                s1 = min(w, s0 + B)
                _fetch(x, a + s0 + dist, a + s1 + dist, lim)
                if pend:                    # written out before it is overwritten
                    _emit(sb, pso + s0, out, poo + s0, s1 - s0, pf, pdiv, stream, mis)
                if libm:
                    part[k], _ = _expsum_libm(x, a + s0, sb, so + s0, m, s1 - s0, False)
                else:
                    part[k], _ = _expsum(x, a + s0, sb, so + s0, m, s1 - s0, False)
            return np.float64(m), (part[0] if nb == 1 else _pairwise(part, nb))
        return _segment_slow(x, sb, a, e, so, part, dist, lim, out, pso, poo, pf, pend,
                             pdiv, stream, mis, m, mn, fine)

    @njit(cache=True, fastmath=_FM)
    def _segment_slow(x, sb, a, e, so, part, dist, lim, out, pso, poo, pf, pend, pdiv,
                      stream, mis, m, mn, fine):
        """``_segment`` for a chunk with special values or entries far below its maximum
        (kept out of line, so that the common path stays small)."""
        x, sb, out, part = _borrow(x), _borrow(sb), _borrow(out), _borrow(part)
        w = e - a
        floor = _floor_of(x)
        _fetch(x, a + dist, e + dist, lim)
        if pend:
            _emit(sb, pso, out, poo, w, pf, pdiv, stream, mis)
        if not fine:
            if m == -np.inf and mn == -np.inf:
                for j in range(w):
                    sb[so + j] = 0.0
                return np.float64(m), 0.0
            return np.nan, 0.0
        # Entries below the normal range of 2^n: clamped in the vector loop, then redone by
        # the scalar exp (``sb`` is a buffer of its own, or the output: the logits are
        # still in ``x``).
        _expsum(x, a, sb, so, m, w, True)
        for j in range(w):
            d = x[a + j] - m
            if d < floor:
                sb[so + j] = math.exp(d)
        B = _SUM_BYTES // x.itemsize
        nb = (w + B - 1) // B
        for k in range(nb):
            s0 = so + k * B
            part[k] = _sum(sb, s0, min(so + w, s0 + B))
        return np.float64(m), _pairwise(part, nb)

    @njit(cache=True)
    def _merge(ms, ss, nc):
        """The row's normalizer from its chunks' (max, sum) pairs, as the online normalizer
        merges them; ``ms`` becomes each chunk's factor exp(m_q - M) / d. NaN if the row must
        be all NaN (a NaN or +inf entry, or only -inf). Not inlined, and without fast-math:
        one thread and the split path run the same code, so the sum has the same order."""
        M = -np.inf
        bad = False
        for q in range(nc):
            bad = bad or ms[q] != ms[q]
            M = ms[q] if ms[q] > M else M
        if bad or M == -np.inf:
            return np.nan
        d = 0.0
        for q in range(nc):
            ms[q] = math.exp(ms[q] - M)
            d += ss[q] * ms[q]
        for q in range(nc):
            ms[q] = ms[q] / d
        return d

    @njit(cache=True, inline="always")
    def _factors(ms, ss, nc, fac, fo, divide):
        """The row's factors into ``fac[fo:fo+nc]``: one chunk is divided by its sum
        (``divide``) or multiplied by its reciprocal; several are multiplied by their
        factors exp(m_q - M) / d; a row that must be all NaN gets NaN factors (NaN times
        anything is NaN). Returns whether the row is to be divided."""
        if nc == 1 and ms[0] == ms[0] and ms[0] != -np.inf:
            fac[fo] = ss[0] if divide else 1.0 / ss[0]
            return divide
        d = _merge(ms, ss, nc)
        for q in range(nc):
            fac[fo + q] = np.nan if d != d else ms[q]
        return False

    @njit(cache=True, fastmath=_FM, inline="always")
    def _emit_row(sb, sbase, out, base, K, fac, fo, nc, divide, stream, mis):
        """A row written out from its exponentials ``sb[sbase:sbase+K]``, chunk by chunk."""
        for q in range(nc):
            a = q * _CHUNK
            _emit(sb, sbase + a, out, base + a, min(K, a + _CHUNK) - a,
                  _cast(fac[fo + q], sb), divide, stream, mis)

    @njit(cache=True, fastmath=_FM)
    def _run(x, b, out, r0, r1, K, sb, part, ms, ss, fac, divide, stream, mis, libm, mode,
             fetch):
        """Rows ``r0:r1``, chunk by chunk. With ``mode == 0`` the exponentials of a row go
        to the buffer ``sb`` (one row long), and each row is written out from it while the
        next row computes, block by block, each block of the old row just before the new
        one's exponentials take its place; the last row is written out at the end.
        ``mode == 1`` (the chapter's ablation) writes each row out right after its
        exponentials instead. With ``mode == 2`` (``sb`` is ``out``: rows too long for a
        buffer) the exponentials go to the output row and are scaled there. Throughout,
        the entries one chunk ahead are prefetched while a chunk computes (unless
        ``fetch`` is false)."""
        x, b, out, sb = _borrow(x), _borrow(b), _borrow(out), _borrow(sb)
        part, ms, ss, fac = _borrow(part), _borrow(ms), _borrow(ss), _borrow(fac)
        nc = (K + _CHUNK - 1) // _CHUNK
        dist = max(min(K, _CHUNK), _PREFETCH)
        lim = r1 * K if fetch else 0            # no prefetching past lim
        _fetch(x, r0 * K, r0 * K + dist, lim)
        pend = False
        pdiv = False
        pbase = 0
        psb = 0
        pfo = 0
        for i in range(r0, r1):
            base = i * K
            half = (i - r0) % 2
            sbase = base if mode == 2 else 0
            for q in range(nc):
                a = base + q * _CHUNK
                e = min(base + K, a + _CHUNK)
                ms[q], ss[q] = _segment(x, b, sb, a, e, sbase + q * _CHUNK, part, libm,
                                        dist, lim, out, psb + q * _CHUNK,
                                        pbase + q * _CHUNK, _cast(fac[pfo + q], sb),
                                        pend, pdiv, stream, mis)
            fo = half * nc
            dv = _factors(ms, ss, nc, fac, fo, divide)
            if mode == 0:
                pend, pdiv, pbase, psb, pfo = True, dv, base, sbase, fo
            else:
                _emit_row(sb, sbase, out, base, K, fac, fo, nc, dv, stream and mode == 1,
                          mis)
        if pend:
            _emit_row(sb, psb, out, pbase, K, fac, pfo, nc, pdiv, stream, mis)
        if stream:
            _sfence()

    @njit(cache=True, fastmath=_FM)
    def _some_chunks(x, b, sb, sbase, base, K, q0, q1, part, ms, ss, libm):
        """Chunks ``q0:q1`` of the row at ``base`` (the same pipeline, within the row), their
        exponentials into ``sb`` from ``sbase`` on."""
        x, b, sb = _borrow(x), _borrow(b), _borrow(sb)
        part, ms, ss = _borrow(part), _borrow(ms), _borrow(ss)
        lim = base + min(K, q1 * _CHUNK)
        _fetch(x, base + q0 * _CHUNK, base + (q0 + 1) * _CHUNK, lim)
        for q in range(q0, q1):
            a = base + q * _CHUNK
            e = min(base + K, a + _CHUNK)
            ms[q], ss[q] = _segment(x, b, sb, a, e, sbase + q * _CHUNK, part, libm,
                                    _CHUNK, lim, sb, 0, 0, _cast(1.0, sb), False, False,
                                    False, 0)

    @njit(cache=True, fastmath=_FM)
    def _emit_chunks(sb, sbase, out, base, K, q0, q1, ms, d, stream, mis):
        """Chunks ``q0:q1`` of a split row written out, each scaled by its factor."""
        for q in range(q0, q1):
            a = q * _CHUNK
            _emit(sb, sbase + a, out, base + a, min(K, a + _CHUNK) - a, _cast(ms[q], sb),
                  False, stream, mis)
        if stream:
            _sfence()

    @njit(cache=True, inline="always")
    def _buffer(x, out, K, mode):
        """The exponentials' buffer for ``mode`` (see ``_run``)."""
        if mode == 2:
            return out
        return np.empty(K, x.dtype)

    @njit(parallel=True, cache=True)
    def _rows(x, b, out, n, K, nchunks, divide, stream, mis, libm, mode, fetch):
        nc = (K + _CHUNK - 1) // _CHUNK
        if n < nchunks and nc > 1:
            # Fewer rows than threads: the chunks of each row are shared out, and their
            # (max, sum) pairs merged in the same order as one thread would (same bits).
            per_q = (nc + nchunks - 1) // nchunks
            ms = np.empty(nc)
            ss = np.empty(nc)
            inplace = mode == 2
            sb = out if inplace else np.empty(K, x.dtype)
            for i in range(n):
                base = i * K
                sbase = base if inplace else 0
                for c in prange(nchunks):
                    q0 = c * per_q
                    q1 = min(nc, q0 + per_q)
                    if q0 < q1:
                        _some_chunks(x, b, sb, sbase, base, K, q0, q1,
                                     np.empty(_CHUNK * 8 // _SUM_BYTES), ms, ss, libm)
                d = _merge(ms, ss, nc)
                if d != d:
                    for j in range(K):
                        out[base + j] = np.nan
                    continue
                for c in prange(nchunks):
                    q0 = c * per_q
                    _emit_chunks(sb, sbase, out, base, K, q0, min(nc, q0 + per_q), ms,
                                 d, stream, mis)
            return
        per = (n + nchunks - 1) // nchunks
        for c in prange(nchunks):                # one contiguous run of rows per thread
            r0 = c * per
            r1 = min(n, r0 + per)
            if r0 < r1:                          # buffers allocated once per run
                _run(x, b, out, r0, r1, K, _buffer(x, out, K, mode),
                     np.empty(_CHUNK * 8 // _SUM_BYTES), np.empty(nc), np.empty(nc),
                     np.empty(2 * nc), divide, stream, mis, libm, mode, fetch)

    @njit(cache=True)
    def _rows_one(x, b, out, n, K, divide, stream, mis, libm, mode, fetch):
        """``_rows`` on one thread, without a parallel region: no thread of numba's pool is
        woken (which costs microseconds per call, and much more when the machine's other
        CPUs are busy)."""
        if n == 0:
            return
        nc = (K + _CHUNK - 1) // _CHUNK
        _run(x, b, out, 0, n, K, _buffer(x, out, K, mode), np.empty(_CHUNK * 8 // _SUM_BYTES),
             np.empty(nc), np.empty(nc), np.empty(2 * nc), divide, stream, mis, libm, mode,
             fetch)


def _mode(K, itemsize):
    """Where a run of rows keeps its exponentials (see ``_run``): in a buffer of one row up
    to ``_BUFFER_BYTES`` (0), in the output row itself beyond (2)."""
    return 2 if K * itemsize > _BUFFER_BYTES else 0


def _rows_call(x, out, nchunks, divide, stream=False, libm=False, overlap=True, fetch=True):
    """Softmax of the C-contiguous rows of ``x`` (2-d, float32 or float64) into ``out``
    (C-contiguous, same dtype), with streaming stores if ``stream`` allows (and ``out``
    is aligned). For the chapter's ablation: the C library's exp if ``libm``; each row
    written out after its exponentials (not while the next row computes) unless
    ``overlap``; no prefetching unless ``fetch``."""
    n, K = x.shape
    flat = x.reshape(-1)
    o = out.reshape(-1)
    itype = np.int32 if x.dtype == np.float32 else np.int64
    address = o.ctypes.data
    size = o.itemsize
    mis = (address // size) % (64 // size)
    mode = _mode(K, size)
    if mode == 0 and not overlap:
        mode = 1
    # A line that a row shares with its neighbour would be written partly by ordinary and
    # partly by streaming stores, which costs more than it saves: stream only rows that
    # start on a line, or rows long enough for that not to matter. The output's lines are
    # read anyway where the exponentials are kept in it (mode 2).
    lined = mis == 0 and (K * size) % 64 == 0
    stream = (bool(stream) and mode != 2 and address % size == 0
              and (lined or K * size >= 16384))
    if nchunks == 1:
        _rows_one(flat, flat.view(itype), o, n, K, divide, stream, mis, libm, mode, fetch)
    else:
        _rows(flat, flat.view(itype), o, n, K, nchunks, divide, stream, mis, libm, mode,
              fetch)


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
        _expsum(x, 0, out, 0, 0.0, x.shape[0], True)
        floor = _MIN_F64
    else:
        _expsum(x, 0, out, 0, np.float32(0), x.shape[0], True)
        floor = _MIN_F32
    low = x < floor
    out[low] = np.exp(x[low])
    return out


def _aligned_empty(shape, dtype):
    """``np.empty(shape, dtype)`` starting on a 64-byte boundary (a cache line, and the
    alignment that streaming vector stores need); NumPy itself guarantees only 16 bytes."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(n * dtype.itemsize + 64, np.uint8)
    skip = -raw.ctypes.data % 64
    return raw[skip:skip + n * dtype.itemsize].view(dtype).reshape(shape)


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
#: Outputs of at least this many bytes are written with streaming stores (smaller ones are
#: likely to be read again while they are still in the cache, so they are written to it).
_STREAM_BYTES = 8 * 1024 * 1024


def softmax_kernel(z, axis=-1, out=None, threads=1, *, _exp="poly", _divide=False,
                   _stream=None, _prefetch=True, _overlap=True):
    """Softmax by a compiled row kernel (numba), at or near the speed of memory.

    Per row: the maximum (found with the minimum, which tells whether any entry falls below
    the fast exponential's range), then the shifted exponentials written to a buffer of the
    thread's own and summed in the same loop, then the row written out, scaled by the
    reciprocal of the sum, while the next row computes. The input is read from memory once
    and the output written once: for large outputs with streaming stores, which do not read
    the output's lines into the cache before writing them; the logits ahead are prefetched.
    Rows longer than a chunk (4096 entries) are done chunk by chunk, each shifted by its own
    maximum and merged as the online normalizer of chapter 10 does. Rows are spread over
    ``threads`` threads.

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

    libm = _exp != "poly"

    def rows_fn(x, o, nchunks, divide, stream=False):
        _rows_call(x, o, nchunks, divide, stream, libm, _overlap, _prefetch)
    want = min(nchunks, numba.config.NUMBA_NUM_THREADS)

    # The common case, C-contiguous native rows along the last axis into a separate (or new)
    # C-contiguous output, goes straight to the compiled loops: a call then costs a few
    # microseconds instead of the tens that the general blocking machinery takes.
    if (a.dtype == work and axis == a.ndim - 1 and a.flags.c_contiguous
            and (out is None or (out.flags.c_contiguous and out.dtype == work
                                 and not np.may_share_memory(a, out)))):
        res = _aligned_empty(a.shape, work) if out is None else out
        K = a.shape[-1]
        stream = res.nbytes >= _STREAM_BYTES if _stream is None else _stream
        with _thread_pool(want):
            rows_fn(a.reshape(-1, K), res.reshape(-1, K), nchunks, _divide, stream)
        return res

    nbytes = np.prod(a.shape, dtype=np.int64) * np.dtype(dtype).itemsize
    stream = nbytes >= _STREAM_BYTES if _stream is None else _stream

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
            rows_fn(x, o, nchunks, _divide, stream)

    # C-contiguous native rows are handed over whole (a quarter of the array at a time);
    # other layouts go through blocks that are converted to contiguous rows.
    direct = (a.dtype == work and axis == a.ndim - 1 and a.flags.c_contiguous
              and not (out is not None and np.may_share_memory(a, out)))
    block = 1 << 62 if direct else _BLOCK_BYTES

    with _thread_pool(want), np.errstate(**_QUIET):
        return map_rows(a, axis, kernel, dtype, out=out, itemsize=work.itemsize,
                        block_bytes=block)
