"""Softmax, log-softmax and log-sum-exp, accurate to the last bit or so.

All three share one computation along ``axis``, row by row:

1. find the row maximum ``m`` (exactly, in the input's dtype);
2. convert to a *working precision* wider than the input (float16 and float32
   work in float64; float64 works in x87 extended precision where the platform
   has it), subtract ``m`` so that every exponent is ``<= 0``, and only then
   divide by the temperature (``max(z / T) = max(z) / T``, and ``z - m`` is
   nearly exact where ``z / T`` is not);
3. exponentiate and sum.

Every function runs these steps on blocks of rows through
:func:`softmaxbook._rows.map_rows`, which hands each kernel a read-only view of
whole rows: the input is never modified, no row can influence another, and the
work space is one block whatever the layout. Rows longer than a block are done
in chunks. ``softmax`` at temperature 1 uses, for float64, the TwoSum
correction below instead of extended precision, which NumPy evaluates an order
of magnitude more slowly.

Why the wider precision matters: in float64, ``z - m`` is rounded, and ``exp``
turns an absolute error ``delta`` in its argument into a relative error
``delta`` in its result. For ``|z - m|`` near 700 the rounding error of the
subtraction is about ``700 * 2**-53``, so the textbook shifted formula can be
off by hundreds of units of eps. Carried out in 64-bit-significand arithmetic,
the same error is 2048 times smaller, and the one rounding back to float64 at
the end dominates. Where no extended type exists, float64 input is handled with
an error-free transformation instead: the exact rounding error ``err`` of
``z - m`` is recovered (Knuth's TwoSum) and folded back in as
``exp(z - m) * (1 + err)``.

Special values follow :mod:`scipy.special` except where the docstrings say.
"""

from __future__ import annotations

import numpy as np

from ._rows import BLOCK_BYTES, map_rows, unbuffered
from ._validation import (
    HAS_EXTENDED,
    check_axis,
    check_temperature,
    real_array_no_copy,
    working_dtype,
)

__all__ = ["softmax", "log_softmax", "logsumexp"]

_QUIET = dict(over="ignore", under="ignore", invalid="ignore", divide="ignore")


def _prepare(z, axis, temperature=1.0):
    """Validate the arguments; return ``(a, axis, temperature, dtype)``.

    ``a`` is a floating array, possibly in non-native byte order (the row
    driver converts it block by block), and ``dtype`` the dtype of the result:
    the caller's own floating dtype (byte order included), float64 for
    integers and booleans.
    """
    a, dtype, _ = real_array_no_copy(z)
    if a.ndim == 0:
        raise np.exceptions.AxisError(
            f"softmax needs at least one axis to normalise along; got a 0-d array ({a!r})"
        )
    axis = check_axis(axis, a.ndim)
    t = check_temperature(temperature)
    return a, axis, t, dtype


def _two_prod(a, b):
    """``(p, e)`` with ``p = fl(a * b)`` and ``p + e == a * b`` exactly (Dekker/Veltkamp)."""
    def split(v):
        c = 134217729.0 * v            # 2**27 + 1
        hi = c - (c - v)
        return hi, v - hi
    p = a * b
    a1, a2 = split(a)
    b1, b2 = split(b)
    e = ((a1 * b1 - p) + a1 * b2 + a2 * b1) + a2 * b2
    return p, e


def _exp_parts(a, axis, temperature=1.0):
    """Shifted exponentials in working precision.

    Returns ``(d, err, e, m)``: ``d = (x - m) / T`` rounded, with ``m`` the
    maximum of ``x`` along ``axis`` and ``T`` the temperature; ``err`` the
    rounding error of ``d`` (``None`` when the working precision is wider than
    the input, so that it is negligible); ``e = exp(d + err)``.

    The maximum is subtracted *before* dividing by ``T``: ``max(x / T) =
    max(x) / T`` for ``T > 0``, and ``x - m`` is (nearly) exact, while
    ``x / T`` would carry a rounding error of size ``|x / T| * eps`` into the
    exponent (hundreds of eps for logits of size 1e5).
    """
    m = np.max(a, axis=axis, keepdims=True)     # exact in the input's dtype
    d, err, e = _shifted_exp(a, m, temperature)
    return d, err, e, m.astype(working_dtype(a.dtype))


def _shifted_exp(a, m, temperature=1.0):
    """``(d, err, e)`` of :func:`_exp_parts` for a given shift ``m`` (``a``'s dtype)."""
    w = working_dtype(a.dtype)
    d = a.astype(w)
    d -= m.astype(w)
    err = None
    if w == a.dtype == np.float64 and not HAS_EXTENDED:
        # TwoSum: d + err == a - m exactly (for finite operands).
        bb = d - a
        err = (a - (d - bb)) + (-m - bb)
        del bb
    if temperature != 1:
        t = w.type(temperature)
        q = d / t
        if err is not None:
            # The division's own rounding error, exactly: d - q*t = r, so
            # d/t = q + r/t; the rounding error of a - m follows as err/t.
            p, pe = _two_prod(q, t)
            r = (d - p) - pe
            err = (r + err) / t
        d = q
    if err is not None:
        err[~np.isfinite(err)] = 0.0
    e = np.exp(d)
    if err is not None:
        e += e * err
    return d, err, e


def _long_row(x, kind, temperature=1.0, o=None):
    """Softmax, log-softmax or LSE (``kind``) of one long row ``x``, chunk by chunk.

    Memory: a chunk of work space, whatever the row's length. Pass 1 finds the
    maximum (exactly, in ``x``'s dtype); pass 2 sums the shifted exponentials
    of all entries but one maximal one, chunk by chunk; pass 3 writes the
    result into ``o`` (the output row), recomputing each chunk's
    exponentials. Returns ``o``, or for ``"lse"`` a 0-d array in working
    precision.
    """
    w = working_dtype(x.dtype)
    K = len(x)
    m = np.max(x)
    if not np.isfinite(m):
        # NaN anywhere: NaN. +inf: softmax NaN; log_softmax NaN at the
        # infinite entries and -inf elsewhere; LSE +inf. All -inf: softmax and
        # log_softmax NaN (0/0), LSE -inf.
        if kind == "lse":
            return np.asarray(m, dtype=w)
        o[...] = np.nan
        if np.isposinf(m) and kind == "log_softmax":   # no NaN, or m would be NaN
            o[...] = -np.inf
            o[np.isposinf(x)] = np.nan
        return o
    mm = np.asarray(m)[None]
    rest = w.type(0)
    found = False
    for start in range(0, K, _CHUNK):
        xc = x[start:start + _CHUNK]
        _, _, e = _shifted_exp(xc, mm, temperature)
        if not found and np.max(xc) == m:
            e[np.argmax(e)] = 0      # one maximal entry: exp(0) = 1 exactly
            found = True
        rest += np.sum(e)
    log_total = np.log1p(rest)
    if kind == "lse":
        return np.asarray(w.type(m) + log_total)
    total = 1 + rest
    for start in range(0, K, _CHUNK):
        d, err, e = _shifted_exp(x[start:start + _CHUNK], mm, temperature)
        oc = o[start:start + _CHUNK]
        if kind == "softmax":
            oc[...] = e / total
        else:
            if err is not None:
                d += err
            oc[...] = d - log_total
    return o


def _log1p_rest(e, x_axis_argmax, axis):
    """``log(sum(e))`` computed as ``log1p`` of the sum without one maximal entry.

    Overwrites ``e`` (the maximal entry, which is exactly 1, is set to 0).
    """
    np.put_along_axis(e, x_axis_argmax, 0, axis=axis)
    return np.log1p(np.sum(e, axis=axis, keepdims=True))


def softmax(z, axis=-1, temperature=1.0):
    r"""Softmax of ``z`` along one axis, optionally at a temperature.

    .. math:: \operatorname{softmax}(z)_i = \frac{e^{z_i/T}}{\sum_j e^{z_j/T}}

    Parameters
    ----------
    z : array_like of real numbers
        The logits. float16, float32, float64 and longdouble keep their dtype;
        integer and boolean input is promoted to float64.
    axis : int, optional
        The axis along which the outputs sum to one (default: the last).
    temperature : positive float, optional
        Divide the logits by ``temperature`` first. ``T > 1`` flattens the
        distribution, ``T < 1`` sharpens it. It is taken as a float64 (a
        longdouble temperature is rounded to the nearest float64, and one
        outside the float64 range is refused).

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``z`` (float64 for integer or bool input);
        entries in ``[0, 1]`` that sum to one along ``axis``.

    Raises
    ------
    TypeError
        For non-real input (strings, objects, complex, ragged lists) or a
        non-integer axis or temperature.
    numpy.exceptions.AxisError
        If ``axis`` is out of range or ``z`` is 0-d.
    ValueError
        If ``temperature`` is not positive and finite.

    Notes
    -----
    Accuracy: the relative error of each entry is at most about 0.5 eps of the
    output dtype for float16 and float32, and within 2 eps for float64 (about
    1.8 eps is the largest seen in the tests and in an independent review); see
    the module docstring
    for how. ``scipy.special.softmax`` can be off by hundreds of eps in float64
    when logits span a few hundred units.

    longdouble input is computed in longdouble itself (there is no wider
    type): as accurate as the textbook formula in that precision, and with a
    temperature the error grows with ``|z - max| / T`` as it does there.

    Speed and memory: the work is done in blocks of rows that stay in the
    cache; with ``temperature=1``, float64 uses an error-free correction
    instead of long double, so this costs about as much as
    ``scipy.special.softmax`` (the book's benchmark measures the ratio). Other
    temperatures take a slower path in extended precision, which divides by
    ``T`` after subtracting the maximum. Besides the output, a call needs one
    block of work space (and one float64 row for a float16/32 row longer than
    a block), where SciPy needs a temporary the size of the input.

    Special values, per slice along ``axis``:

    * a NaN anywhere makes the whole slice NaN, and no other slice;
    * ``-inf`` entries get probability 0; a slice of only ``-inf`` is all NaN
      (0/0), as in SciPy;
    * a ``+inf`` entry makes the slice NaN, as in SciPy (``inf - inf``);
    * an empty axis returns an empty array of the same shape. *Difference from
      SciPy*, which raises ``ValueError`` there: an empty input has an empty
      output, and a batch that happens to contain no classes should not crash;
    * finite extremes are finite: ``softmax([1e308, -1e308])`` is ``[1, 0]``.

    The input is never modified, and each slice's result depends on that
    slice alone. Non-native byte order (``'>f8'``) is computed natively and
    returned in the caller's dtype.

    *Changed in 0.4.0*: the temperature is applied after the shift (dividing
    first cost up to hundreds of eps for large logits, and NaN for tiny
    temperatures in float16/32); finite extremes no longer give NaN; rows of
    10**6 entries and more stay within 2 eps; non-native byte order gets the
    accurate path.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxbook import softmax
    >>> softmax([2.0, 1.0, 0.5]).round(4)
    array([0.6285, 0.2312, 0.1402])
    >>> softmax(np.array([1.0, 2.0], dtype=np.float32)).dtype
    dtype('float32')
    >>> softmax([1000.0, 1000.0])   # no overflow
    array([0.5, 0.5])
    >>> print(softmax([1.0, 2.0], temperature=0.1))
    [4.53978687e-05 9.99954602e-01]
    """
    a, axis, t, dtype = _prepare(z, axis, temperature)
    if a.shape[axis] == 0:
        return np.empty(a.shape, dtype=dtype)
    native = dtype.newbyteorder("=")
    if t == 1 and native in _BLOCKED_DTYPES:
        kernel, itemsize = _softmax_kernel_t1(native), 8
    else:
        kernel, itemsize = _softmax_kernel_general(t), 4 * working_dtype(native).itemsize
    with np.errstate(**_QUIET):
        return map_rows(a, axis, kernel, dtype, itemsize=itemsize)


#: Input dtypes served by the fast path of :func:`softmax` (temperature 1).
_BLOCKED_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

#: float64 rows longer than this many entries are processed in chunks of it.
_CHUNK = BLOCK_BYTES // 8


def _softmax_kernel_general(temperature):
    """Row kernel: softmax in the working precision of :func:`_exp_parts`."""
    def kernel(x, o):
        if x.shape[1] > _CHUNK:
            for xr, orow in zip(x, o):
                _long_row(xr, "softmax", temperature, orow)
            return
        _, err, e, _ = _exp_parts(x, 1, temperature)
        if err is not None:                 # float64 without extended precision
            hi, lo = np.empty_like(e), np.empty_like(e)
            s = np.empty((len(e), 1))
            _accurate_row_sums(e, hi, lo, s)
            del hi, lo
        else:
            s = np.sum(e, axis=1, keepdims=True)
        np.divide(e, s, out=e)
        o[...] = e
    return kernel


def _softmax_kernel_t1(dtype):
    """Row kernel for temperature 1 and float16/32/64 input, with its scratch space.

    float16 and float32 work in float64 (the difference ``x - m`` of two such
    numbers is exact there, and one rounding at the end gives the result);
    float64 uses the TwoSum correction ``exp(d) * (1 + err)`` for the rounding
    error ``err`` of ``d = x - m``, and long rows are done in chunks.
    A float16/32 block of rows of up to ``_NARROW_WHOLE`` entries is done as a
    whole (one float64 exponential per entry, a float64 block of work space); a
    longer row is done on its own by :func:`_long_row_narrow`, in a float64
    row of work space. The choice depends on the row's length only, so a row
    gives the same bits alone or among others.
    """
    scratch = {}

    def buffers(shape, n):
        if scratch.get("shape") != shape:
            scratch["shape"] = shape
            scratch["bufs"] = [np.empty(shape) for _ in range(n)]
            scratch["m"], scratch["s"] = np.empty((shape[0], 1)), np.empty((shape[0], 1))
        return scratch["bufs"], scratch["m"], scratch["s"]

    def kernel(x, o):
        r, K = x.shape
        if dtype != np.float64 and K > _NARROW_WHOLE:
            (d,), _, _ = buffers((1, K), 1)
            for xr, orow in zip(x, o):
                _long_row_narrow(xr, orow, d[0])
        elif dtype != np.float64:
            (d,), m, s = buffers((r, K), 1)
            _block_narrow(x, o, d, m, s)
        elif K > _CHUNK:
            (d, t), m, s = buffers((1, _CHUNK), 2)
            for i in range(r):
                _long_row_float64(x[i:i + 1], o[i:i + 1], d, t, m, s)
        else:
            (d, t), m, s = buffers((r, K), 2)
            _block_float64(x, o, d, t, m, s)
    return kernel


#: float16/32 rows up to this length are computed whole in float64 by :func:`_block_narrow`.
_NARROW_WHOLE = 1 << 16


def _long_row_narrow(x, o, d):
    """One float16/32 row longer than ``_NARROW_WHOLE``, in the float64 row ``d``.

    The maximum (exact in ``x``'s dtype); ``d = x - m`` in float64 (exact: the
    difference of two float16/32 numbers fits a float64); ``exp(d)`` and its
    float64 sum; ``d`` times ``1 / sum``, rounded once to the output (the float64
    rounding errors are 2**29 times below float32's half ulp). A NaN, ``+inf`` or
    all ``-inf`` row is NaN, as in :func:`softmax`.
    """
    m = np.max(x)
    if not np.isfinite(m):
        o[...] = np.nan
        return
    d[...] = x                     # convert, then shift: faster than a mixed-type ufunc
    d -= np.float64(m)
    np.exp(d, out=d)
    np.multiply(d, 1.0 / np.sum(d), out=o, casting="same_kind")


def _block_narrow(x, o, d, m, s):
    """float16/float32 rows ``x`` -> softmax in ``o``, computed in float64 and rounded
    once to the output (as in :func:`_long_row_narrow`)."""
    np.max(x, axis=1, keepdims=True, out=m)
    d[...] = x                     # convert, then shift: faster than a mixed-type ufunc
    with unbuffered(x.shape[1]):
        np.subtract(d, m, out=d)
    np.exp(d, out=d)
    np.sum(d, axis=1, keepdims=True, out=s)
    np.reciprocal(s, out=s)        # float64: its rounding is far below float32's
    with unbuffered(x.shape[1]):
        np.multiply(d, s, out=o, casting="same_kind")


def _twosum_error(x, m, d, t, o):
    """``o = err`` with ``d + err == x - m`` exactly, given ``d = fl(x - m)`` (``t`` is scratch).

    Non-finite errors (from infinite ``x`` or ``d``, or from ``x - m`` beyond the
    float range) are set to 0: there is nothing to correct. The check costs one
    sum over the block; finite rows get the same bits whatever their neighbours.
    """
    np.subtract(d, x, out=t)       # t = d - x
    np.subtract(d, t, out=o)       # o = d - t
    np.subtract(x, o, out=o)       # o = x - (d - t)
    np.add(t, m, out=t)            # t = t + m
    np.subtract(o, t, out=o)       # err = (x - (d - t)) + (-m - t): exactly x - m - d
    if not np.isfinite(np.sum(o)):
        o[~np.isfinite(o)] = 0.0


def _block_float64(x, o, d, t, m, s):
    """float64 rows ``x`` -> softmax in ``o``, with the TwoSum-corrected exponent.

    Reads ``x`` after writing ``o``: ``o`` must not overlap ``x``.
    """
    np.max(x, axis=1, keepdims=True, out=m)
    with unbuffered(x.shape[1]):
        np.subtract(x, m, out=d)       # d = fl(x - m)
        _twosum_error(x, m, d, t, o)
    np.exp(d, out=d)
    np.multiply(o, d, out=o)
    np.add(d, o, out=d)            # exp(d) * (1 + err) = exp(x - m) to within rounding
    _accurate_row_sums(d, o, t, s)
    with unbuffered(x.shape[1]):
        np.divide(d, s, out=o)


def _long_row_float64(x, o, d, t, m, s):
    """One float64 row ``x`` of shape (1, K), longer than a chunk, done chunk by chunk.

    Pass 1 finds the maximum; pass 2 writes the corrected exponentials of each
    chunk (which stays in cache) and accumulates the two parts of their split
    sums separately (the high parts add up exactly, see
    :func:`_accurate_row_sums`); pass 3 divides. A row whose maximum is NaN or
    infinite is all NaN, as in :func:`softmax`.
    """
    K, chunk = x.shape[1], d.shape[1]
    m[...] = np.max(x)
    if not np.isfinite(m[0, 0]):
        o[...] = np.nan
        return
    total_hi = total_lo = 0.0
    for start in range(0, K, chunk):
        xc, oc = x[:, start:start + chunk], o[:, start:start + chunk]
        w = xc.shape[1]
        dc, tc = d[:, :w], t[:, :w]
        np.subtract(xc, m, out=dc)
        _twosum_error(xc, m, dc, tc, oc)
        np.exp(dc, out=dc)
        np.multiply(oc, dc, out=oc)
        np.add(dc, oc, out=oc)          # corrected exponentials, written to the output
        np.add(oc, _SPLIT, out=dc)
        np.subtract(dc, _SPLIT, out=dc)
        np.subtract(oc, dc, out=tc)
        total_hi += float(np.sum(dc))   # exact: multiples of 2**-25 below 2**28
        total_lo += float(np.sum(tc))
    np.divide(o, total_hi + total_lo, out=o)


_SPLIT = 1.5 * 2.0 ** 27   # adding and subtracting it rounds a number in [0, 2] to a multiple of 2**-25


def _accurate_row_sums(e, hi, lo, s):
    """Row sums of ``e`` (entries in [0, ~1]) with a relative error of about one rounding.

    Each entry is split as ``e = hi + lo`` with ``hi`` a multiple of 2**-25 and
    ``|lo| <= 2**-26``. The ``hi`` parts of a row add up exactly in float64 (their
    sum is an integer times 2**-25, below 2**53 for rows shorter than 2**27); the
    ``lo`` parts are so small that the rounding errors of their sum are
    negligible. A plain float64 sum of the ``e`` can be off by a few eps.
    """
    np.add(e, _SPLIT, out=hi)
    np.subtract(hi, _SPLIT, out=hi)
    np.subtract(e, hi, out=lo)
    np.sum(lo, axis=1, keepdims=True, out=s)
    s += np.sum(hi, axis=1, keepdims=True)


def log_softmax(z, axis=-1):
    r"""Logarithm of the softmax of ``z`` along one axis, computed from the logits.

    .. math:: \log \operatorname{softmax}(z)_i = z_i - \log \sum_j e^{z_j}

    It is evaluated as ``(z_i - m) - log1p(r)``, where ``m`` is the largest
    logit and ``r`` the sum of ``exp(z_j - m)`` over all entries but one
    maximal one. ``log1p`` keeps the tiny log-probability of a dominant class:
    for ``z = [0, -46]`` the answer for the first entry is about ``-1.05e-20``,
    which ``log(softmax(z))`` and ``scipy.special.log_softmax`` round to 0.

    Parameters
    ----------
    z : array_like of real numbers
        The logits (dtype rules as in :func:`softmax`).
    axis : int, optional
        The axis to normalise along (default: the last).

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``z`` (float64 for integer or bool input);
        entries ``<= 0``.

    Raises
    ------
    TypeError, numpy.exceptions.AxisError
        As for :func:`softmax`.

    Notes
    -----
    Special values, per slice, as in SciPy: a NaN makes the slice NaN;
    ``-inf`` entries give ``-inf``; a slice of only ``-inf`` is all NaN; with
    ``+inf`` entries, those entries are NaN (``inf - inf``) and the finite ones
    ``-inf`` (next to an infinite logit their probability is 0 in every limit).
    An empty axis returns an empty array. *Difference from SciPy*, which raises
    ``ValueError`` there: see :func:`softmax`.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxbook import log_softmax
    >>> log_softmax([0.0, 0.0]).round(6)
    array([-0.693147, -0.693147])
    >>> float(log_softmax([0.0, -46.0])[0])
    -1.0530617357553812e-20
    """
    a, axis, _, dtype = _prepare(z, axis)
    if a.shape[axis] == 0:
        return np.empty(a.shape, dtype=dtype)

    def kernel(x, o):
        if x.shape[1] > _CHUNK:
            for xr, orow in zip(x, o):
                _long_row(xr, "log_softmax", o=orow)
        else:
            o[...] = _log_softmax_work(x, 1)

    with np.errstate(**_QUIET):
        return map_rows(a, axis, kernel, dtype,
                        itemsize=3 * working_dtype(dtype.newbyteorder("=")).itemsize)


def _log_softmax_work(a, axis):
    """Log-softmax of the validated array ``a``, left in working precision."""
    d, err, e, m = _exp_parts(a, axis)
    idx = np.argmax(d, axis=axis, keepdims=True)
    out = d - _log1p_rest(e, idx, axis)
    del e
    if err is not None:
        out += err
    # Slices with a +inf logit (and no NaN, or m would be NaN): NaN at the
    # infinite entries (d = inf - inf), -inf at every other entry.
    inf_rows = np.isposinf(m)
    if np.any(inf_rows):
        out = np.where(inf_rows, np.where(np.isnan(d), np.nan, -np.inf), out)
    return out


def logsumexp(z, axis=-1):
    r"""``log(sum(exp(z)))`` along one axis, without overflow or underflow.

    .. math:: \operatorname{LSE}(z) = m + \log\Bigl(1 + \sum_{j \ne j^*} e^{z_j - m}\Bigr),
              \qquad m = z_{j^*} = \max_j z_j

    A smooth upper bound of the maximum: ``max(z) <= LSE(z) <= max(z) + log K``.

    Parameters
    ----------
    z : array_like of real numbers
        Dtype rules as in :func:`softmax`.
    axis : int, optional
        The axis to reduce (default: the last).

    Returns
    -------
    numpy.ndarray or numpy scalar
        ``z``'s shape without ``axis``, in ``z``'s dtype (float64 for integer
        or bool input); a NumPy scalar for 1-d input.

    Raises
    ------
    TypeError, numpy.exceptions.AxisError
        As for :func:`softmax`.

    Notes
    -----
    Special values, as in SciPy: a NaN gives NaN; ``+inf`` (without NaN) gives
    ``+inf``; only ``-inf`` gives ``-inf``; an empty axis gives ``-inf`` (the
    log of an empty sum). When the result is close to zero while ``max(z)`` is
    not, the problem itself is ill-conditioned, and the relative error can be
    large for any method.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxbook import logsumexp
    >>> float(logsumexp([1000.0, 1000.0]))   # 1000 + log 2, no overflow
    1000.6931471805599
    >>> logsumexp(np.zeros((2, 4)), axis=1).round(6)
    array([1.386294, 1.386294])
    """
    a, axis, _, dtype = _prepare(z, axis)
    if a.shape[axis] == 0:
        return np.full(np.delete(a.shape, axis), -np.inf, dtype=dtype)[()]

    def kernel(x, o):
        if x.shape[1] > _CHUNK:
            for i, xr in enumerate(x):
                o[i] = _long_row(xr, "lse")
            return
        d, err, e, m = _exp_parts(x, 1)
        del err
        idx = np.argmax(d, axis=1, keepdims=True)
        del d
        r = m + _log1p_rest(e, idx, 1)
        # Rows where the maximum is infinite: the answer is that infinity
        # (unless a NaN is present, which np.max has already propagated).
        o[...] = np.where(np.isinf(m), m, r)[:, 0]

    with np.errstate(**_QUIET):
        res = map_rows(a, axis, kernel, dtype, reduce=True,
                       itemsize=3 * working_dtype(dtype.newbyteorder("=")).itemsize)
    return res[()]
