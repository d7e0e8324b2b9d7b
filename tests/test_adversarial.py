"""The adversarial battery: every public function, every layout, every special value.

For each function that works along an axis it crosses

* dtypes: float16, float32, float64, longdouble, non-native byte order, int, bool;
* layouts: C, Fortran, strided, transposed, negative strides, read-only, size-1 axes;
* axis: last and first, negative; out-of-range and huge axes must raise;
* aliasing: ``fast_softmax(z, out=z)`` and ``out=`` a view that overlaps ``z`` otherwise;
* special values: NaN, +-inf, +-1e308 (float64) / +-3e38 (float32), subnormals,
  rows of only -inf, ties;
* rows that differ wildly from one another (maxima from -1e4 to 1e4),

and checks, row by row:

1. the value, against a 40-digit mpmath reference, within the documented
   bound (``softmax``/``log_softmax``: 0.5 eps for float16/32, 2 eps for
   float64; the fast and online versions: the textbook bound
   ``(|z_i - max| + K + 4) eps``), with the documented special values;
2. that the row's result does not depend on the other rows (bit for bit the
   same as computing that row alone), nor on the layout or byte order;
3. that the input is never modified (unless ``out=`` is the input);
4. that the dtype is kept (floats keep theirs, byte order included; int and
   bool become float64; ``fast_softmax`` returns float32 for float16).

Bad input must raise the documented exception with a message naming the argument.
"""

from __future__ import annotations

import functools

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import softmaxbook as sb
from softmaxbook.calibration import expected_calibration_error, fit_temperature, reliability_bins
from softmaxbook.datasets import digits_split
from softmaxbook.ranking import auc_mann_whitney
from softmaxbook.regression import fit_softmax_regression

DPS = 40
T = 0.37          # a temperature that is not a power of two
LD = np.dtype(np.longdouble)


# --- the exact reference, row by row ------------------------------------------------------------

def _mpf(v):
    """An exact mpmath number for a NumPy float of any width (longdouble included)."""
    if np.isnan(v):
        return mpmath.nan
    if np.isinf(v):
        return mpmath.inf if v > 0 else -mpmath.inf
    m, e = np.frexp(np.longdouble(v))                 # exact for every float up to longdouble
    return mpmath.ldexp(mpmath.mpf(int(np.ldexp(m, 64))), int(e) - 64)


@functools.lru_cache(maxsize=None)
def _exact(kind, row_bytes, dtype_str, scale):
    """Exact result of ``kind`` for one row (bytes of a 1-d array of ``dtype_str``).

    Returns a list of mpf (None for entries that must be NaN), following the
    documented special values: a NaN makes the row NaN; a +inf makes softmax
    NaN, log_softmax NaN at the infinite entries and -inf elsewhere, LSE +inf;
    a row of only -inf is NaN (softmax, log_softmax) or -inf (LSE).
    """
    row = np.frombuffer(row_bytes, dtype=dtype_str)
    n = len(row)
    nan = [None] * n
    if np.any(np.isnan(row)):
        return [None] if kind == "lse" else nan
    if np.any(np.isposinf(row)):
        if kind == "lse":
            return [mpmath.inf]
        if kind == "log_softmax":
            return [None if np.isposinf(v) else -mpmath.inf for v in row]
        return nan
    if np.all(np.isneginf(row)):
        return [-mpmath.inf] if kind == "lse" else nan
    with mpmath.workdps(DPS):
        xs = [_mpf(v) / scale for v in row]
        m = max(xs)
        top = xs.index(m)
        # log1p keeps a sum of 1 + 1e-76 apart from 1 at any working precision
        rest = mpmath.fsum(mpmath.exp(x - m) for j, x in enumerate(xs) if j != top)
        log_total = mpmath.log1p(rest)
        if kind == "lse":
            return [m + log_total]
        # (x - m) - log1p(rest): no cancellation against m, whatever its size
        if kind == "log_softmax":
            return [(x - m) - log_total for x in xs]
        return [mpmath.exp((x - m) - log_total) for x in xs]


def exact_rows(kind, z2, scale=1):
    """Exact results for the rows of the 2-d array ``z2`` (native byte order)."""
    z2 = np.ascontiguousarray(z2, dtype=z2.dtype.newbyteorder("="))
    return [_exact(kind, r.tobytes(), z2.dtype.str, mpmath.mpf(scale)) for r in z2]


def row_errors(got_row, exact, dtype, scale_rows=None):
    """Relative errors in eps of one row (inf where a special value is wrong)."""
    fi = np.finfo(dtype)
    errs = []
    with mpmath.workdps(DPS):
        for j, (g, e) in enumerate(zip(got_row, exact)):
            if e is None:
                errs.append(0.0 if np.isnan(g) else np.inf)
                continue
            if not mpmath.isfinite(e):
                errs.append(0.0 if (np.isinf(g) and (g > 0) == (e > 0)) else np.inf)
                continue
            if not np.isfinite(g):
                errs.append(np.inf)
                continue
            denom = max(abs(e), _mpf(fi.smallest_normal))
            if scale_rows is not None:
                denom = max(denom, scale_rows[0])
            errs.append(float(abs(_mpf(g) - e) / denom / _mpf(fi.eps)))
    return np.array(errs)


# --- the functions under test -------------------------------------------------------------------

def result_dtype(dtype, fast=False):
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return np.dtype(np.float64)
    if fast and dtype.itemsize == 2:
        return np.dtype(np.float32).newbyteorder(dtype.byteorder)
    return dtype


def textbook_bound(z_row, eps_dtype):
    """``(|z_i - max| + K + 4)`` per entry: the error bound of the textbook shifted formula."""
    z = np.asarray(z_row, dtype=np.float64)
    finite = z[np.isfinite(z)]
    m = finite.max() if finite.size else 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.where(np.isfinite(z), np.abs(z - m), 0.0)
    return d + len(z) + 4


def _accurate_limit(dtype):
    dtype = np.dtype(dtype)
    return {2: 0.51, 4: 0.51, 8: 2.0}.get(dtype.itemsize)      # longdouble: textbook bound


def _out_for(z):
    """A fresh output array for ``fast_softmax(z, out=...)``, or None where ``z`` is not an array."""
    try:
        a = np.asarray(z)
    except ValueError:          # ragged: let fast_softmax itself report the problem
        return None
    if a.dtype.kind not in "fiub":
        return None
    return np.empty(a.shape, result_dtype(a.dtype, fast=True))


FUNCTIONS = {
    # name: (call(z, axis), kind, fast, limit(dtype) or None for the textbook bound, scale)
    "softmax": (lambda z, axis: sb.softmax(z, axis=axis), "softmax", False, _accurate_limit, 1),
    "softmax(T)": (lambda z, axis: sb.softmax(z, axis=axis, temperature=T), "softmax", False,
                   _accurate_limit, T),
    "log_softmax": (lambda z, axis: sb.log_softmax(z, axis=axis), "log_softmax", False,
                    _accurate_limit, 1),
    "logsumexp": (lambda z, axis: sb.logsumexp(z, axis=axis), "lse", False, _accurate_limit, 1),
    "fast_softmax": (lambda z, axis: sb.fast_softmax(z, axis=axis), "softmax", True,
                     lambda d: None, 1),
    "fast_softmax(out=)": (lambda z, axis: sb.fast_softmax(z, axis=axis, out=_out_for(z)),
                           "softmax", True, lambda d: None, 1),
    "fast_softmax(small blocks)": (lambda z, axis: sb.fast_softmax(z, axis=axis, block_bytes=16),
                                   "softmax", True, lambda d: None, 1),
    "online_softmax": (lambda z, axis: sb.online_softmax(z, axis=axis, block=2), "softmax", False,
                       lambda d: None, 1),
    "softmax_kernel": (lambda z, axis: sb.softmax_kernel(z, axis=axis), "softmax", False,
                       lambda d: None, 1),
    "softmax_kernel(threads=2)": (lambda z, axis: sb.softmax_kernel(z, axis=axis, threads=2),
                                  "softmax", False, lambda d: None, 1),
}


def check_rows(name, z2, res2, dtype):
    """Compare the rows of ``res2`` (result of ``name`` on the rows of ``z2``) with the reference."""
    _, kind, fast, limit_of, scale = FUNCTIONS[name]
    work = result_dtype(dtype, fast)
    eps_dtype = np.float32 if (fast and np.dtype(dtype).itemsize == 2) else (
        work if work.kind == "f" else np.float64)
    eps_dtype = np.dtype(eps_dtype).newbyteorder("=")
    limit = limit_of(np.dtype(dtype)) if np.dtype(dtype).kind == "f" else limit_of(np.float64)
    if name == "online_softmax" or name.startswith("softmax_kernel"):
        limit = None
    exact = exact_rows(kind, z2, scale)
    for i, (row, ex) in enumerate(zip(z2, exact)):
        got = np.atleast_1d(res2[i])
        scale_rows = None
        if kind == "lse":        # absolute error relative to the row's scale (ill-conditioned near 0)
            fin = row[np.isfinite(row)].astype(np.float64)
            scale_rows = [mpmath.mpf(max(1.0, float(np.max(np.abs(fin))) / scale if fin.size else 1.0))]
        errs = row_errors(got, ex, eps_dtype, scale_rows)
        bound = limit if limit is not None else textbook_bound(row / scale, eps_dtype)
        if limit is None and kind == "log_softmax":
            # log_softmax at the maximum is -log1p(rest): the rounding of every
            # other exponent reaches it, so the row's largest |z - max| counts
            bound = np.max(textbook_bound(row / scale, eps_dtype))
        if kind == "lse" and limit is None:
            bound = len(row) + 4
        if fast and kind == "softmax":
            bound = textbook_bound(row, eps_dtype)
        bad = ~(errs <= bound)
        assert not np.any(bad), (
            f"{name}: row {i} = {row!r} ({np.dtype(dtype)}): entries {np.flatnonzero(bad).tolist()} "
            f"off by {errs[bad].tolist()} eps (bound {bound}); got {got!r}")


# --- the data: rows that differ wildly, with every special value --------------------------------

def wild_rows(dtype, K=5):
    """Rows of ``K`` logits, each of a different kind, for ``dtype`` (a float dtype)."""
    dtype = np.dtype(dtype)
    fi = np.finfo(dtype)
    big = float(fi.max) / 2
    rng = np.random.default_rng(7)
    bound = 0.9 * float(np.log(fi.max)) if dtype.itemsize < 8 else 700.0
    rows = [
        rng.normal(0, 3, K),                                        # ordinary
        1e4 * (dtype.itemsize > 2) + rng.normal(0, 3, K),           # large offset
        -1e4 * (dtype.itemsize > 2) - 50 + rng.normal(0, 3, K),     # all very negative
        np.linspace(0, -bound, K),                                  # spans the exp range
        np.r_[big, -big, np.zeros(K - 2)],                          # finite extremes
        np.r_[0.0, -np.inf, 1.0, -np.inf, 2.0][:K],                 # -inf entries
        np.full(K, -np.inf),                                        # only -inf
        np.r_[np.nan, np.zeros(K - 1)],                             # a NaN
        np.r_[np.inf, 0.0, -np.inf, 1.0, 2.0][:K],                  # +inf
        np.full(K, float(fi.smallest_subnormal)) * np.arange(K),    # subnormals
        np.full(K, 3.0),                                            # ties
        np.r_[0.0, 0.0, -599.0, -749.0, -60.0][:K],                 # far below its own max
    ]
    with np.errstate(over="ignore"):
        return np.array(rows, dtype=dtype)


DTYPES = [np.float16, np.float32, np.float64, LD]


def layouts(z2):
    """``(name, view)``: the same 2-d values in many memory layouts (the caller's own arrays)."""
    n, K = z2.shape
    out = [("C", np.ascontiguousarray(z2)), ("F", np.asfortranarray(z2))]
    big = np.zeros((2 * n, 3 * K), dtype=z2.dtype)
    big[::2, ::3] = z2
    out.append(("strided", big[::2, ::3]))
    rev = np.ascontiguousarray(z2[::-1, ::-1])
    out.append(("negative strides", rev[::-1, ::-1]))
    ro = np.array(z2)
    ro.flags.writeable = False
    out.append(("read-only", ro))
    if z2.dtype.itemsize in (4, 8) and z2.dtype != LD:
        out.append(("non-native byte order", z2.astype(z2.dtype.newbyteorder("S"))))
    return out


def run_and_check(name, z2, axis_first=False):
    """Run ``name`` on every layout of ``z2`` and check values, independence, input, dtype."""
    call = FUNCTIONS[name][0]
    reference_bits = None
    for lname, view in layouts(z2):
        z = view.T if axis_first else view
        before = z.copy()
        axis = 0 if axis_first else -1
        res = call(z, axis)
        np.testing.assert_array_equal(z, before, err_msg=f"{name} modified its input ({lname})")
        assert res.dtype == result_dtype(view.dtype, "fast" in name), (name, lname, res.dtype)
        res_rows = np.asarray(res).T if (axis_first and res.ndim == 2) else np.asarray(res)
        res_rows = res_rows.astype(res_rows.dtype.newbyteorder("="))
        if reference_bits is None:
            reference_bits = res_rows
            check_rows(name, z2, res_rows, z2.dtype)
            # each row alone gives the same bits as the row among the others
            for i in range(len(z2)):
                alone = call(z2[i:i + 1].T if axis_first else z2[i:i + 1], axis)
                alone = np.asarray(alone).T if (axis_first and alone.ndim == 2) else np.asarray(alone)
                np.testing.assert_array_equal(
                    alone.astype(alone.dtype.newbyteorder("="))[0], res_rows[i],
                    err_msg=f"{name}: row {i} depends on the other rows")
        else:
            np.testing.assert_array_equal(res_rows, reference_bits,
                                          err_msg=f"{name}: layout {lname} changes the result")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("axis_first", [False, True], ids=["axis=-1", "axis=0"])
def test_wild_rows_every_layout(name, dtype, axis_first):
    run_and_check(name, wild_rows(dtype), axis_first)


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("K", [1, 2, 3])
def test_short_rows(name, K):
    run_and_check(name, wild_rows(np.float64, K=5)[:, :K].copy())


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.uint16, np.bool_])
def test_integer_and_bool_input_become_float64(name, dtype):
    z = np.array([[0, 1, 2], [1, 1, 0], [0, 0, 0]]).astype(dtype)
    res = FUNCTIONS[name][0](z, -1)
    assert res.dtype == np.float64
    np.testing.assert_array_equal(res, FUNCTIONS[name][0](z.astype(np.float64), -1))


# --- random rows: hypothesis -------------------------------------------------------------------

SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e308, -1e308, 5e-324, 3e38, -3e38, 1e4, -1e4]


@st.composite
def batches(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    K = draw(st.integers(1, 6))
    n = draw(st.integers(1, 4))
    fi = np.finfo(dtype)
    entry = st.one_of(
        st.floats(-float(np.log(fi.max)), float(np.log(fi.max)), allow_nan=False, width=64),
        st.sampled_from(SPECIALS),
        st.floats(-1e5, 1e5, allow_nan=False),
    )
    with np.errstate(over="ignore"):
        z = np.array(draw(st.lists(st.lists(entry, min_size=K, max_size=K), min_size=n, max_size=n)),
                     dtype=dtype)
    name = draw(st.sampled_from(list(FUNCTIONS)))
    return name, z, draw(st.booleans())


@given(batches())
def test_random_rows_with_specials(case):
    name, z, axis_first = case
    run_and_check(name, z, axis_first)


# --- big arrays: the block and chunk paths --------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 70_000), (300, 257)])
@pytest.mark.parametrize("name", ["softmax", "softmax(T)", "log_softmax", "logsumexp",
                                  "fast_softmax", "online_softmax"])
def test_block_and_chunk_paths_keep_rows_independent(name, dtype, shape):
    """Long rows and many rows, with wild rows inside: each row as if it were alone."""
    rng = np.random.default_rng(3)
    z = rng.normal(0, 4, shape).astype(dtype)
    z[0, 5] = np.nan
    z[1, :] -= 5e3 if dtype == np.float64 else 500
    z[2, 7] = np.inf
    z[-1, :] = -np.inf
    if shape[0] > 3:
        z[3, 3] = float(np.finfo(dtype).max)
    call = FUNCTIONS[name][0]
    before = z.copy()
    res = call(z, -1)
    np.testing.assert_array_equal(z, before)
    for i in [0, 1, 2, shape[0] - 1] + ([3, 4] if shape[0] > 3 else []):
        np.testing.assert_array_equal(np.asarray(call(z[i:i + 1], -1))[0], res[i],
                                      err_msg=f"{name}: row {i}")
    # value check on a few clean rows against the float64 / long double computation
    i = 4 if shape[0] > 4 else 1
    ref = exact_rows(FUNCTIONS[name][1], z[i:i + 1, :200] if shape[1] > 200 else z[i:i + 1],
                     FUNCTIONS[name][4])
    if shape[1] <= 200:
        check_rows(name, z[i:i + 1], res[i:i + 1], dtype)
    assert ref  # the reference exists for the row checked


def test_long_float64_rows_meet_the_accuracy_promise():
    """Rows of 10**6: the chunked float64 path within 2 eps (its chunk sums add exactly)."""
    rng = np.random.default_rng(11)
    z = rng.normal(0, 3, (1, 1_000_000))
    got = sb.softmax(z)[0]
    idx = rng.choice(z.shape[1], 40, replace=False)
    with mpmath.workdps(DPS):
        xs = [_mpf(v) for v in z[0]]
        m = max(xs)
        total = mpmath.fsum(mpmath.exp(x - m) for x in xs)
        errs = [float(abs(_mpf(got[j]) - mpmath.exp(xs[j] - m) / total)
                      / (mpmath.exp(xs[j] - m) / total) / mpmath.mpf(2.0 ** -52)) for j in idx]
    assert max(errs) <= 2.0, max(errs)


def test_temperature_is_applied_after_the_shift():
    """The issue's example: logits of 1e5 at T = 0.1 were 7.7 eps off (divided first)."""
    z = np.array([1e5, 1e5 - 2.95])
    got = sb.softmax(z, temperature=0.1)
    exact = exact_rows("softmax", z[None], mpmath.mpf(0.1))[0]
    assert row_errors(got, exact, np.float64).max() <= 2.0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("temperature", [1e-300, 1e-30, 1e-5, 1e30, 1e300, 10 ** 300])
def test_extreme_temperatures_are_limits_not_nan(dtype, temperature):
    z = np.array([[1.0, 2.0, 2.0, -1.0], [0.0, -1.0, -2.0, -3.0]], dtype=dtype)
    got = sb.softmax(z, temperature=temperature).astype(np.float64)
    assert np.all(np.isfinite(got)), got
    np.testing.assert_allclose(got.sum(axis=-1), 1, rtol=1e-3)
    if temperature < 1e-20:
        np.testing.assert_allclose(got, [[0, 0.5, 0.5, 0], [1, 0, 0, 0]], atol=1e-30)
    if temperature > 1e20:
        np.testing.assert_allclose(got, 0.25, rtol=1e-3)


def test_finite_extremes_match_scipy():
    import scipy.special as ss
    z = np.array([1e308, -1e308])
    np.testing.assert_array_equal(sb.softmax(z), ss.softmax(z))
    np.testing.assert_array_equal(sb.softmax(z), [1.0, 0.0])
    # the same row next to a row with an infinity: the same answer
    np.testing.assert_array_equal(sb.softmax(np.array([[1e308, -1e308], [np.inf, 0.0]]))[0], [1, 0])


# --- aliasing --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_softmax_in_place(dtype):
    z = wild_rows(dtype)
    expected = sb.fast_softmax(z)
    w = z.copy()
    assert sb.fast_softmax(w, out=w) is w
    np.testing.assert_array_equal(np.isnan(w), np.isnan(expected))
    check_rows("fast_softmax", z, w, dtype)
    # the example: rows of one block shifted differently
    zz = np.array([[0, 0], [-1000, -1001]], dtype=dtype)
    sb.fast_softmax(zz, out=zz)
    np.testing.assert_allclose(zz[1], sb.softmax(np.array([-1000, -1001], dtype=dtype)), rtol=1e-6)


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("make_view", [lambda b: b.T, lambda b: b[::2], lambda b: b[:, ::-1]],
                         ids=["transposed", "strided", "reversed"])
def test_fast_softmax_in_place_on_views(axis, make_view):
    """out= is the caller's own non-contiguous view, the same as z: in place, correct."""
    base = np.random.default_rng(1).normal(0, 5, (6, 8))
    view = make_view(base)
    expected = sb.softmax(view.copy(), axis=axis)
    assert sb.fast_softmax(view, axis=axis, out=view) is view
    np.testing.assert_allclose(view, expected, rtol=1e-12)


def test_fast_softmax_out_overlapping_input_otherwise():
    z = np.random.default_rng(2).normal(0, 5, (6, 6))
    for out_view in (lambda a: a[::-1], lambda a: a.T, lambda a: a[:, ::-1]):
        w = z.copy()
        out = out_view(w)
        expected = sb.softmax(z)
        sb.fast_softmax(w, out=out)
        np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_fast_softmax_transposed_input_is_not_overwritten():
    """The issue's example: fast_softmax(z.T, axis=0) left the softmax in z."""
    z = np.random.default_rng(3).normal(size=(5, 4))
    before = z.copy()
    r = sb.fast_softmax(z.T, axis=0)
    np.testing.assert_array_equal(z, before)
    np.testing.assert_allclose(r, sb.softmax(z.T, axis=0), rtol=1e-12)


# --- 0-d, empty, size-1 ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_zero_d_raises_axis_error(name):
    with pytest.raises(np.exceptions.AxisError):
        FUNCTIONS[name][0](np.float64(1.0), -1)


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0,), (2, 0, 3)])
def test_empty(name, shape):
    z = np.zeros(shape)
    res = FUNCTIONS[name][0](z, -1)
    kind = FUNCTIONS[name][1]
    if kind == "lse":
        assert res.shape == shape[:-1]
        assert np.all(res == -np.inf)
    else:
        assert res.shape == shape


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_size_one_axes(name):
    z = np.array([[[2.0]], [[-np.inf]], [[np.nan]]])
    for axis in (0, 1, 2, -1):
        res = FUNCTIONS[name][0](z, axis)
        shape = tuple(np.delete(z.shape, axis)) if FUNCTIONS[name][1] == "lse" else z.shape
        assert np.shape(res) == shape
    res = FUNCTIONS[name][0](z, -1)
    kind = FUNCTIONS[name][1]
    expected = {"softmax": [1.0, np.nan, np.nan], "log_softmax": [0.0, np.nan, np.nan],
                "lse": [2.0, -np.inf, np.nan]}[kind]
    np.testing.assert_array_equal(np.asarray(res).ravel(), expected)


# --- bad input: the documented exception, naming the argument -------------------------------------

BAD_Z = [("abc", TypeError, "string"), (np.array(["a", "b"]), TypeError, "z must"),
         ([[1.0, 2.0], [3.0]], TypeError, "rectangular"), (np.array([1 + 2j]), TypeError, "complex"),
         (None, TypeError, "z must"), (np.array([object()]), TypeError, "z must")]


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("z, exc, message", BAD_Z)
def test_bad_z(name, z, exc, message):
    with pytest.raises(exc, match=message):
        FUNCTIONS[name][0](z, -1)


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("axis, exc", [(2, np.exceptions.AxisError), (-3, np.exceptions.AxisError),
                                       (2 ** 63, np.exceptions.AxisError),
                                       (10 ** 30, np.exceptions.AxisError), (1.0, TypeError),
                                       (True, TypeError), ("0", TypeError), (None, TypeError)])
def test_bad_axis(name, axis, exc):
    with pytest.raises(exc, match="axis"):
        FUNCTIONS[name][0](np.zeros((2, 3)), axis)


@pytest.mark.parametrize("temperature, exc", [(0, ValueError), (-1.0, ValueError), (np.nan, ValueError),
                                              (np.inf, ValueError), (10 ** 400, ValueError),
                                              ("1", TypeError), (True, TypeError),
                                              (np.array([1.0, 2.0]), TypeError)])
def test_bad_temperature(temperature, exc):
    with pytest.raises(exc, match="temperature"):
        sb.softmax([1.0, 2.0], temperature=temperature)


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(out=np.empty((3, 2))), ValueError, "out must have shape"),
    (dict(out=np.empty((2, 3), np.float32)), ValueError, "out must have shape .* dtype"),
    (dict(out=[[0.0] * 3] * 2), TypeError, "out must be a NumPy array"),
    (dict(block_bytes=0), ValueError, "block_bytes"),
    (dict(block_bytes=1.5), ValueError, "block_bytes"),
])
def test_fast_softmax_bad_arguments(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        sb.fast_softmax(np.zeros((2, 3)), **kwargs)


def test_fast_softmax_read_only_out():
    out = np.empty((2, 3))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out must be a writeable"):
        sb.fast_softmax(np.zeros((2, 3)), out=out)


@pytest.mark.parametrize("block", [0, -1, 1.5, True, "2"])
def test_online_bad_block(block):
    for f in (sb.online_softmax, sb.online_normalizer):
        with pytest.raises(ValueError, match="block"):
            f(np.zeros((2, 3)), block=block)


def test_merge_normalizers_keeps_longdouble_and_names_bad_shapes():
    m, d = sb.merge_normalizers(np.longdouble(1), np.longdouble(1), np.longdouble(0), np.longdouble(1))
    assert m.dtype == LD and d.dtype == LD
    with pytest.raises(ValueError, match="broadcast"):
        sb.merge_normalizers(np.zeros(2), np.zeros(2), np.zeros(3), np.zeros(3))
    with pytest.raises(TypeError, match="m1"):
        sb.merge_normalizers("a", 1.0, 0.0, 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, LD])
def test_online_normalizer_rows_and_dtypes(dtype):
    z = wild_rows(dtype)
    before = z.copy()
    m, d = sb.online_normalizer(z, block=2)
    np.testing.assert_array_equal(z, before)
    assert m.dtype == (LD if dtype == LD else np.float64)
    for i in range(len(z)):
        mi, di = sb.online_normalizer(z[i:i + 1], block=2)
        np.testing.assert_array_equal(mi[0], m[i])
        np.testing.assert_array_equal(di[0], d[i])
    finite = np.isfinite(m[:, 0])
    exact = exact_rows("lse", z)
    for i in np.flatnonzero(finite):
        got = mpmath.mpf(_mpf(m[i, 0])) + mpmath.log(_mpf(d[i, 0]))
        assert abs(got - exact[i][0]) <= 1e-13 * max(1, abs(exact[i][0])), (i, got, exact[i][0])
    # rows with a NaN or only -inf: the documented pairs
    assert np.isnan(m[7, 0]) and m[6, 0] == -np.inf and d[6, 0] == 0


# --- the functions with the classes on the last axis ---------------------------------------------

CLASSWISE = {
    "softmax_jacobian": lambda z: sb.softmax_jacobian(z),
    "softmax_jvp": lambda z: sb.softmax_jvp(z, np.arange(z.shape[-1], dtype=np.float64) - 1),
    "cross_entropy": lambda z: sb.cross_entropy(z, np.zeros(z.shape[:-1], int), reduction="none"),
    "cross_entropy_grad": lambda z: sb.cross_entropy_grad(z, np.zeros(z.shape[:-1], int),
                                                          reduction="sum"),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(CLASSWISE))
def test_classwise_functions(name, dtype):
    z2 = wild_rows(dtype)
    f = CLASSWISE[name]
    first = None
    for lname, view in layouts(z2):
        before = view.copy()
        res = f(view)
        np.testing.assert_array_equal(view, before, err_msg=f"{name} modified its input ({lname})")
        if name != "softmax_jvp":
            assert res.dtype == view.dtype, (name, lname, res.dtype)
        res = res.astype(res.dtype.newbyteorder("="))
        if first is None:
            first = res
            for i in range(len(z2)):
                np.testing.assert_array_equal(f(z2[i:i + 1])[0], res[i],
                                              err_msg=f"{name}: row {i} depends on the other rows")
        else:
            np.testing.assert_array_equal(res, first, err_msg=f"{name}: layout {lname}")
    # values: the ordinary rows (0, 3) against mpmath; the -inf entries and special rows by rule
    exact_s = exact_rows("softmax", z2)
    exact_l = exact_rows("log_softmax", z2)
    eps = np.finfo(dtype).eps
    tiny = max(float(np.finfo(dtype).smallest_subnormal), 1e-300)   # below it: rounds to 0
    for i in (0, 3, 5, 11):
        s = np.array([float(v) for v in exact_s[i]])
        with mpmath.workdps(DPS):
            # 1 - s_j from the log-probabilities: exact even when s_j is within eps of 1
            comp = [-mpmath.expm1(v) if v is not None and mpmath.isfinite(v) else mpmath.mpf(1)
                    for v in exact_l[i]]
            diag = np.array([float(p * c) for p, c in zip(exact_s[i], comp)])
            grad0 = float(-comp[0])
        if name == "softmax_jacobian":
            ref = -np.outer(s, s)
            ref[np.diag_indices(len(s))] = diag
            np.testing.assert_allclose(first[i].astype(np.float64), ref, rtol=8 * eps, atol=tiny)
        elif name == "softmax_jvp":
            v = np.arange(len(s)) - 1.0
            ref = s * (v - s @ v)
            np.testing.assert_allclose(first[i].astype(np.float64), ref, rtol=1e3 * eps,
                                       atol=1e3 * eps * np.abs(v).max())
        elif name == "cross_entropy":
            np.testing.assert_allclose(float(first[i]), -float(exact_l[i][0]), rtol=4 * eps)
        else:
            ref = s.copy()
            ref[0] = grad0
            np.testing.assert_allclose(first[i].astype(np.float64), ref, rtol=8 * eps, atol=tiny)
    # a NaN row is NaN everywhere in its own result and nowhere else
    nan_row = 7
    assert np.all(np.isnan(first[nan_row]))
    assert np.all(np.isfinite(first[0]))


def test_cross_entropy_probability_targets():
    rng = np.random.default_rng(4)
    z = rng.normal(0, 3, (6, 4))
    y = rng.dirichlet(np.ones(4), 6)
    y[0] = [1, 0, 0, 0]
    loss = sb.cross_entropy(z, y, reduction="none")
    np.testing.assert_allclose(loss, -(y * sb.log_softmax(z)).sum(-1), rtol=1e-14)
    # a one-hot target equals the integer label
    np.testing.assert_allclose(loss[0], sb.cross_entropy(z[:1], [0], reduction="none")[0], rtol=1e-15)
    g = sb.cross_entropy_grad(z, y, reduction="sum")
    np.testing.assert_allclose(g, sb.softmax(z) - y, atol=1e-15)
    # finite differences of the loss agree with the gradient
    h = 1e-6
    fd = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        e = np.zeros_like(z)
        e[idx] = h
        fd[idx] = (sb.cross_entropy(z + e, y, "sum") - sb.cross_entropy(z - e, y, "sum")) / (2 * h)
    np.testing.assert_allclose(g, fd, atol=1e-8)
    # 0 log 0 = 0: a target that rules out a class whose logit is -inf
    zz = np.array([[0.0, -np.inf]])
    assert sb.cross_entropy(zz, np.array([[1.0, 0.0]])) == 0.0
    for bad, message in [(np.array([[0.5, 0.6, 0, 0]]), "sum to 1"),
                         (np.array([[1.5, -0.5, 0, 0]]), "non-negative"),
                         (np.array([[np.nan, 1, 0, 0]]), "finite")]:
        with pytest.raises(ValueError, match=message):
            sb.cross_entropy(z[:1], bad)
    with pytest.raises(TypeError, match="probability targets need the logits' shape"):
        sb.cross_entropy(z, np.zeros(6))


# --- the helpers of Part III -----------------------------------------------------------------------

def test_fit_temperature_rejects_non_finite_logits():
    z = np.zeros((4, 3))
    z[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"logits must be finite.*logits\[1, 2\]"):
        fit_temperature(z, [0, 1, 2, 0])
    z[1, 2] = np.inf
    with pytest.raises(ValueError, match="logits must be finite"):
        fit_temperature(z, [0, 1, 2, 0])
    for bounds, exc in [((0, 1), ValueError), ((2, 1), ValueError), (("a", 2), TypeError),
                        (5, ValueError), ((1, np.inf), ValueError)]:
        with pytest.raises(exc, match="bounds"):
            fit_temperature(np.zeros((4, 3)), [0, 1, 2, 0], bounds=bounds)


def test_fit_softmax_regression_rejects_bad_data_and_settings():
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.arange(20) % 3
    Xn = X.copy()
    Xn[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"X must be finite.*X\[4, 1\]"):
        fit_softmax_regression(Xn, y, epochs=1)
    with pytest.raises(ValueError, match="X_val must be finite"):
        fit_softmax_regression(X, y, epochs=1, X_val=Xn, y_val=y)
    for kwargs, exc, name in [(dict(n_classes="3"), TypeError, "n_classes"),
                              (dict(n_classes=0), ValueError, "n_classes"),
                              (dict(n_classes=2.0), TypeError, "n_classes"),
                              (dict(learning_rate="fast"), TypeError, "learning_rate"),
                              (dict(learning_rate=None), TypeError, "learning_rate"),
                              (dict(learning_rate=0), ValueError, "learning_rate"),
                              (dict(l2=np.nan), ValueError, "l2"),
                              (dict(l2="0"), TypeError, "l2"),
                              (dict(decay_epochs=-1), ValueError, "decay_epochs"),
                              (dict(batch_size=2.5), TypeError, "batch_size"),
                              (dict(epochs=True), TypeError, "epochs")]:
        with pytest.raises(exc, match=name):
            fit_softmax_regression(X, y, **{"epochs": 1, **kwargs})
    before = X.copy()
    model = fit_softmax_regression(X, y, epochs=2)
    np.testing.assert_array_equal(X, before)
    with pytest.raises(ValueError, match="X must be finite"):
        model.predict(Xn)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_reliability_bins_accept_every_float_dtype(dtype):
    z = np.random.default_rng(5).normal(0, 2, (200, 10))
    p = sb.softmax(z.astype(dtype))
    y = np.arange(200) % 10
    before = p.copy()
    bins = reliability_bins(p, y, n_bins=5)
    np.testing.assert_array_equal(p, before)
    conf = p.max(axis=1).astype(np.float64)
    expected = [np.sum((conf > lo) & (conf <= lo + 0.2)) for lo in np.linspace(0, 0.8, 5)]
    np.testing.assert_array_equal(bins["count"], expected)
    assert np.isfinite(expected_calibration_error(p, y))


def test_ranking_and_datasets_name_bad_arguments():
    with pytest.raises(ValueError, match="NaN"):
        auc_mann_whitney([0.1, np.nan], [0, 1])
    s = np.array([0.3, 0.1, 0.9, 0.4], dtype=np.float16)
    before = s.copy()
    assert auc_mann_whitney(s, [0, 0, 1, 1]) == auc_mann_whitney(s.astype(np.float64), [0, 0, 1, 1])
    np.testing.assert_array_equal(s, before)
    with pytest.raises(TypeError, match="seed"):
        digits_split(seed="0")
    with pytest.raises(TypeError, match="val_fraction"):
        digits_split(val_fraction="0.2")
    with pytest.raises(ValueError, match="fraction"):
        digits_split(test_fraction=1.5)


def test_version_agrees_with_pyproject():
    import tomllib
    from pathlib import Path
    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert sb.__version__ == meta["project"]["version"]


# --- found by an independent adversarial review (each was a failure before it was fixed) -------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_soft_target_gradient_keeps_the_tiny_entry(dtype):
    z = np.array([50.0 if dtype == np.float64 else 40.0, 0.0], dtype=dtype)
    g_soft = sb.cross_entropy_grad(z, np.array([1.0, 0.0], dtype=dtype))
    g_int = sb.cross_entropy_grad(z, 0)
    np.testing.assert_allclose(g_soft, g_int, rtol=4 * np.finfo(dtype).eps)
    assert g_soft[0] < 0 < g_soft[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_row_log_softmax_with_plus_and_minus_infinity(dtype):
    for fill in (0.0, -float(np.finfo(dtype).max) / 2):
        x = np.full(40_000, fill, dtype=dtype)
        x[0], x[1] = np.inf, -np.inf
        got = sb.log_softmax(x)
        assert np.isnan(got[0]) and np.all(got[1:] == -np.inf), got[:3]
        np.testing.assert_array_equal(sb.log_softmax(x[:100])[:3], got[:3])


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_long_narrow_rows_do_not_depend_on_the_batch_size(dtype):
    rng = np.random.default_rng(12)
    row = (rng.normal(size=100_000) * 3 + 45).astype(dtype)
    alone = sb.softmax(row)
    for n in (1, 2, 15, 16, 40):
        np.testing.assert_array_equal(sb.softmax(np.tile(row, (n, 1)))[-1], alone)


def test_online_softmax_error_does_not_grow_with_the_row():
    x = np.linspace(-1, 1, 2_000_000)
    e = np.exp(x - x.max())
    textbook = e / e.sum()
    for block in (1024, 7):
        got = sb.online_softmax(x, block=block)
        ref = sb.softmax(x)
        err = np.max(np.abs(got - ref) / ref) / np.finfo(float).eps
        err_textbook = np.max(np.abs(textbook - ref) / ref) / np.finfo(float).eps
        assert err <= err_textbook + 4, (block, err, err_textbook)


@pytest.mark.parametrize("order", ["F", "transposed"])
def test_long_rows_give_the_same_bits_in_any_layout(order):
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(8, 300)) * 5
    V = rng.normal(size=(8, 300))
    make = (lambda a: np.asfortranarray(a)) if order == "F" else (lambda a: a.T.copy().T)
    for f in (lambda z: sb.softmax_jacobian(z), lambda z: sb.softmax_jvp(z, make(V)),
              lambda z: sb.cross_entropy_grad(z, np.zeros(len(z), int), reduction="sum"),
              lambda z: sb.cross_entropy(z, np.zeros(len(z), int), reduction="none"),
              lambda z: sb.cross_entropy(z, np.full(z.shape, 1 / 300), reduction="none"),
              lambda z: sb.online_normalizer(z)[1][:, 0]):
        batch = f(make(Z))
        for i in range(len(Z)):
            single = f(Z[i:i + 1]) if f.__code__.co_names[-1] != "softmax_jvp" else None
            if single is not None:
                np.testing.assert_array_equal(batch[i], single[0])
    for i in range(len(Z)):
        np.testing.assert_array_equal(sb.softmax_jvp(make(Z), make(V))[i], sb.softmax_jvp(Z[i], V[i]))


def test_non_native_input_costs_no_more_memory_than_scipy():
    import tracemalloc

    import scipy.special as ss
    z = np.random.default_rng(0).normal(size=(500, 1000)).astype(">f8")

    def peak(f):
        tracemalloc.start()
        try:
            f()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    for ours in (lambda: sb.softmax(z), lambda: sb.log_softmax(z), lambda: sb.fast_softmax(z),
                 lambda: sb.online_softmax(z)):
        assert peak(ours) <= peak(lambda: ss.softmax(z, axis=-1)) * 1.05
    assert sb.softmax(z).dtype == z.dtype and sb.softmax_jvp(z, z).dtype == z.dtype


@pytest.mark.parametrize("call, exc, message", [
    (lambda: sb.fast_softmax(np.zeros((2, 2)), out=np.zeros((2, 2)).view(np.matrix)), TypeError,
     "out"),
    (lambda: reliability_bins(np.full((2, 2), 0.5), [0, 1], n_bins=2 ** 63), ValueError, "n_bins"),
    (lambda: reliability_bins(np.zeros((2, 0)), [0, 0]), ValueError, "probs"),
    (lambda: reliability_bins(np.full((2, 2), 0.5), [0, 1, 1]), ValueError, "probs of shape"),
    (lambda: fit_softmax_regression(np.zeros((3, 2)), [0, 1, 1], seed=-1), ValueError, "seed"),
    (lambda: fit_softmax_regression(np.zeros((3, 2)), [0, 1, 1], seed=1.5), TypeError, "seed"),
    (lambda: fit_softmax_regression(np.zeros((2, 2)), [0, 2 ** 62]), ValueError, "y has a label"),
    (lambda: digits_split(seed=2 ** 40), ValueError, "seed"),
    (lambda: digits_split(val_fraction=0.001), ValueError, "val_fraction"),
    (lambda: auc_mann_whitney([], []), ValueError, "no examples"),
    (lambda: sb.softmax([1.0, 2.0], temperature=np.longdouble("1e-4000")), ValueError,
     "below the float64 range"),
    (lambda: sb.cross_entropy(np.zeros((2, 0)), np.zeros((2, 0))), ValueError, "no classes"),
])
def test_review_errors_name_the_argument(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_merge_normalizers_of_extreme_maxima_is_quiet():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m, d = sb.merge_normalizers(1e308, 1.0, -1e308, 1.0)
    assert m == 1e308 and d == 1.0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("k", [2, 1000, 100_000])
def test_sum_to_one_tolerance_accepts_softmax_rows_and_refuses_a_tenth_off(dtype, k):
    """Probability targets and calibration inputs: a softmax row in any
    dtype passes; a row summing to 1.1 (or 0.9) is refused. The former rule
    1e-6 + 4 K eps let float16 rows summing to anything up to 4 through."""
    from softmaxbook.calibration import reliability_bins

    rng = np.random.default_rng(k)
    z = (rng.normal(size=(4, k)) * np.array([[0.1], [3.0], [30.0], [300.0]])).astype(dtype)
    p = sb.softmax(z)
    labels = np.zeros(4, dtype=int)
    assert np.isfinite(sb.cross_entropy(z, p))
    reliability_bins(p, labels)
    for factor in (1.1, 0.9):
        bad = (p.astype(np.float64) * factor).astype(dtype)
        with pytest.raises(ValueError, match="sum to 1"):
            sb.cross_entropy(z, bad)
        if factor < 1:
            with pytest.raises(ValueError, match="sum to 1"):
                reliability_bins(bad, labels)


def test_auc_ranks_large_integers_exactly_and_takes_float_labels():
    """2**53 and 2**53 + 1 are equal as float64; as integers they are not,
    and the AUC must see the order (1.0, not the 0.5 of a tie)."""
    from sklearn.metrics import roc_auc_score

    for s in (np.array([2**53, 2**53 + 1], dtype=np.int64),
              np.array([2**64 - 2, 2**64 - 1], dtype=np.uint64)):
        assert auc_mann_whitney(s, [0, 1]) == 1.0
        assert auc_mann_whitney(s, [1, 0]) == 0.0
    rng = np.random.default_rng(7)
    s = rng.integers(-5, 5, size=200) + 2**60
    y = rng.integers(0, 2, size=200)
    assert auc_mann_whitney(s, y) == pytest.approx(roc_auc_score(y, s - 2**60), rel=1e-14)
    assert auc_mann_whitney([0.2, 0.7], np.array([0.0, 1.0])) == 1.0
    with pytest.raises(ValueError, match="booleans or 0/1"):
        auc_mann_whitney([0.2, 0.7], [0.0, 0.5])
