"""The compiled softmax kernel (numba): its exponential in ulps, values, threads, fallback."""

import mpmath
import numpy as np
import pytest

import softmaxbook as sb
from softmaxbook import kernel
from softmaxbook.kernel import EXP_ULP, HAVE_NUMBA, exp_poly, softmax_kernel

pytestmark = pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")


@pytest.mark.parametrize("dtype, low", [(np.float64, -708.0), (np.float32, -87.0)])
def test_exp_poly_error_in_ulps(dtype, low):
    rng = np.random.default_rng(5)
    x = np.concatenate([np.linspace(low, 0, 1501), rng.uniform(low, 0, 1500),
                        -rng.uniform(0, 1, 500), [0.0, -1e-300, -np.log(2), low]]).astype(dtype)
    got = exp_poly(x)
    with mpmath.workdps(40):
        worst = max(float(abs(mpmath.mpf(float(g)) - mpmath.exp(mpmath.mpf(float(v))))
                          / mpmath.mpf(float(np.spacing(g)))) for g, v in zip(got, x))
    assert worst <= EXP_ULP[np.dtype(dtype).name], worst
    # below the normal range of 2^n the scalar exp takes over, down to 0
    tiny = np.array([low - 10.0, -745.0 if dtype == np.float64 else -103.0, -1e4], dtype=dtype)
    np.testing.assert_array_equal(exp_poly(tiny), np.exp(tiny))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 5), (300, 257), (3, 40_000)])
def test_kernel_matches_the_accurate_softmax(dtype, shape):
    z = np.random.default_rng(1).normal(0, 6, shape).astype(dtype)
    ref = sb.softmax(z.astype(np.float64))
    got = softmax_kernel(z)
    assert got.dtype == dtype
    eps = np.finfo(dtype).eps
    spread = np.abs(z - z.max(axis=-1, keepdims=True)).astype(np.float64)
    # the textbook bound: |z - max| eps from the exponent's rounding, plus a few eps
    assert np.all(np.abs(got - ref) <= (spread + 8) * eps * ref + np.finfo(dtype).tiny)


def test_threads_give_the_same_bits_and_rows_are_independent():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 3, (64, 300))
    z[5] += 1e4
    z[6, 3] = np.nan
    z[7, 2] = np.inf
    z[8] = -np.inf
    z[9, ::2] = -np.inf
    z[10, 0] = -800.0
    one = softmax_kernel(z)
    two = softmax_kernel(z, threads=2)
    np.testing.assert_array_equal(one, two)
    for i in range(12):
        np.testing.assert_array_equal(softmax_kernel(z[i:i + 1])[0], one[i])
    assert np.all(np.isnan(one[6:9]))
    np.testing.assert_allclose(one[9], sb.softmax(z[9]), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(one[10], sb.softmax(z[10]), rtol=1e-13, atol=1e-300)


def test_out_aliasing_dtypes_and_errors():
    z = np.random.default_rng(3).normal(size=(6, 9))
    expected = softmax_kernel(z)
    w = z.copy()
    assert softmax_kernel(w, out=w) is w
    np.testing.assert_array_equal(w, expected)
    assert softmax_kernel(z.astype(np.float16)).dtype == np.float16
    assert softmax_kernel(z.astype(np.longdouble)).dtype == np.longdouble
    assert softmax_kernel(z.astype(">f8")).dtype == np.dtype(">f8")
    assert softmax_kernel(np.arange(6).reshape(2, 3)).dtype == np.float64
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads"):
            softmax_kernel(z, threads=bad)


def test_fallback_without_numba(monkeypatch):
    monkeypatch.setattr(kernel, "HAVE_NUMBA", False)
    monkeypatch.setattr(kernel, "_warned", False)
    z = np.random.default_rng(4).normal(size=(3, 5))
    with pytest.warns(UserWarning, match="numba is not available"):
        got = softmax_kernel(z)
    np.testing.assert_allclose(got, sb.softmax(z), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fewer_rows_than_threads_split_each_row_and_merge(dtype):
    """One long row on two threads: its chunks are shared out and merged (m, d) in the
    same order as on one thread, so the bits agree; special values still reach the row."""
    rng = np.random.default_rng(6)
    z = rng.normal(0, 8, (1, 5 * kernel._CHUNK + 17)).astype(dtype)
    z[0, 3] = -1e4                                  # below 2^n's normal range: the exact path
    one = softmax_kernel(z)
    two = softmax_kernel(z, threads=2)
    np.testing.assert_array_equal(one, two)
    ref = sb.softmax(z.astype(np.float64))
    np.testing.assert_allclose(two, ref, rtol=50 * np.finfo(dtype).eps, atol=0)
    z[0, -1] = np.nan
    assert np.all(np.isnan(softmax_kernel(z, threads=2)))
    z[0, -1] = np.inf
    assert np.all(np.isnan(softmax_kernel(z, threads=2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [5, 37, 300, 5000])
def test_a_row_gives_the_same_bits_wherever_it_lies_in_memory(dtype, K):
    """The vectorised loops must not let the array's alignment change the order of the sum
    (a row's result would then depend on its position among the other rows)."""
    row = np.random.default_rng(K).normal(0, 5, K).astype(dtype)
    raw = np.empty(2 * K + 64, dtype)
    results = set()
    for offset in range(16):
        x = raw[offset:offset + K]
        x[...] = row
        results.add(softmax_kernel(x).tobytes())
        for out_offset in range(8):
            o = raw[K + 32 + out_offset:2 * K + 32 + out_offset]
            softmax_kernel(x, out=o)
            results.add(o.tobytes())
    assert len(results) == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_long_row_with_a_chunk_of_only_minus_inf(dtype, threads):
    """A chunk whose entries are all -inf contributes exp(-inf) = 0 to its row; the row is
    not NaN (an earlier version returned NaN there). Checked on the run-of-rows path (several
    rows) and on the split path (one row, two threads), with the -inf chunk first and last."""
    C = kernel._CHUNK
    rng = np.random.default_rng(7)
    z = rng.normal(0, 4, (3, 3 * C + 5)).astype(dtype)
    z[0, :C] = -np.inf                  # first chunk
    z[1, 2 * C:] = -np.inf              # the last chunks
    z[2, C:2 * C] = -np.inf             # a middle chunk
    ref = sb.softmax(z.astype(np.float64))
    for rows in (z, z[:1], z[1:2], z[2:]):
        got = softmax_kernel(rows, threads=threads)
        assert not np.any(np.isnan(got))
        want = sb.softmax(rows.astype(np.float64))
        np.testing.assert_allclose(got, want, rtol=50 * np.finfo(dtype).eps, atol=0)
    np.testing.assert_array_equal(softmax_kernel(z, threads=threads)[0, :C], 0.0)
    np.testing.assert_allclose(softmax_kernel(z, threads=threads), ref,
                               rtol=50 * np.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_streaming_stores_write_the_same_bits_at_every_alignment(dtype, threads):
    """Streaming stores start at the first 64-byte boundary of each row's output; whatever
    the output's offset from a line and whatever the row length (short rows of one line,
    rows of many lines, rows of several chunks), every entry is written, with the bits of
    the ordinary stores, and nothing outside the output is touched."""
    rng = np.random.default_rng(8)
    per_line = 64 // np.dtype(dtype).itemsize
    for n, K in ((3, 5), (4, 16), (5, 64), (2, 300), (3, 4096 + 37), (1, 3 * 4096 + 1)):
        z = rng.normal(0, 5, (n, K)).astype(dtype)
        z[0, 1] = -1e4 if K > 1 else z[0, 0]     # an entry below 2^n's range
        if n > 2:
            z[1] = -np.inf
            z[2, 0] = np.nan
        want = softmax_kernel(z, threads=threads, _stream=False)
        raw = np.full(n * K + 2 * per_line, 7.0, dtype)
        for offset in range(per_line):
            raw[...] = 7.0
            o = raw[offset:offset + n * K].reshape(n, K)
            softmax_kernel(z, out=o, threads=threads, _stream=True)
            np.testing.assert_array_equal(o, want)
            assert np.all(raw[:offset] == 7.0) and np.all(raw[offset + n * K:] == 7.0)


def test_large_outputs_stream_and_new_outputs_are_line_aligned():
    """Outputs of 8 MiB and more take the streaming path by default (the same bits as the
    ordinary one), and a new output starts on a 64-byte line."""
    z = np.random.default_rng(9).normal(0, 3, (2100, 1000)).astype(np.float32)
    assert z.nbytes >= kernel._STREAM_BYTES
    got = softmax_kernel(z)
    assert got.ctypes.data % 64 == 0 and got.flags.c_contiguous and got.flags.writeable
    np.testing.assert_array_equal(got, softmax_kernel(z, _stream=False))
    np.testing.assert_array_equal(softmax_kernel(z, threads=2), got)
    small = softmax_kernel(z[:3])
    assert small.ctypes.data % 64 == 0
    np.testing.assert_array_equal(small, got[:3])


@pytest.mark.parametrize("threads", [1, 2])
def test_rows_too_long_for_a_buffer_are_computed_in_the_output(threads):
    """Rows of more than _BUFFER_BYTES keep their exponentials in the output row itself
    (no row buffer); values, special values, the split path and the untouched input are
    checked there too."""
    K = kernel._BUFFER_BYTES // 4 + 5                 # float32: just past the limit
    rng = np.random.default_rng(10)
    z = rng.normal(0, 5, (3, K)).astype(np.float32)
    z[0, 7] = -1e4                                    # below 2^n's range: the exact path
    z[1, : kernel._CHUNK] = -np.inf                   # a chunk of only -inf
    z[2, K // 2] = np.nan
    before = z.copy()
    got = softmax_kernel(z, threads=threads)
    np.testing.assert_array_equal(z, before)
    assert np.all(np.isnan(got[2])) and not np.any(np.isnan(got[:2]))
    want = sb.softmax(z[:2].astype(np.float64))
    np.testing.assert_allclose(got[:2], want, rtol=50 * np.finfo(np.float32).eps, atol=0)
    np.testing.assert_array_equal(got[1, : kernel._CHUNK], 0.0)
    # one row on several threads (chunks shared out) gives the one-thread bits
    one = softmax_kernel(z[:1])
    np.testing.assert_array_equal(softmax_kernel(z[:1], threads=threads), one)
    np.testing.assert_array_equal(one, got[:1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(64, 300), (3, 3 * kernel._CHUNK + 5)])
def test_the_ablation_switches_change_the_schedule_not_the_bits(dtype, shape):
    """Chapter 10 times the kernel without prefetching, with each row written out right
    after its exponentials (not while the next row computes), and with ordinary or
    streaming stores: each changes when memory is touched, never a value."""
    rng = np.random.default_rng(7)
    z = rng.normal(0, 4, shape).astype(dtype)
    z[1, 3] = np.nan
    z[2, ::5] = -np.inf
    z[0, 0] = -500.0                               # below float32's fast range
    ref = softmax_kernel(z)
    assert np.all(np.isnan(ref[1])) and np.all(ref[2, ::5] == 0)
    for opts in ({"_prefetch": False}, {"_overlap": False}, {"_stream": True},
                 {"_stream": False}, {"_overlap": False, "_stream": True, "_prefetch": False}):
        for threads in (1, 2):
            got = softmax_kernel(z, threads=threads, **opts)
            np.testing.assert_array_equal(got, ref, err_msg=str((opts, threads)))
