"""CPU softmax benchmark: every implementation timed side by side with a copy of the same array.

Run with ``make bench`` (or ``python benchmarks/cpu_softmax.py``). For float32 and
float64 and four shapes it times, in interleaved rounds (median of the rounds after
warm-up), a copy of the input into a preallocated array (the memory-traffic floor:
one read, one write) and several softmax implementations; prints each time as a
multiple of the copy time and as a speed-up over ``scipy.special.softmax``; checks
every output against a float64 reference; and writes everything, with the machine's
description, to ``softmaxbook/data/cpu_softmax.json``, which chapter 10 reads.

Single-threaded: BLAS/OpenMP thread counts are set to 1 before NumPy is imported
(NumPy's element-wise functions and reductions are single-threaded anyway).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("NUMBA_NUM_THREADS", "2")     # the compiled kernel chooses 1 or 2 itself
# Threads that finish a parallel region sleep at once instead of spinning for the next one
# (OpenMP's default, and KMP_BLOCKTIME's 200 ms in torch's runtime): a spinning thread of
# one implementation would otherwise take a CPU from the next one timed, with two CPUs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("KMP_BLOCKTIME", "0")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.special as ss  # noqa: E402

import softmaxbook as sb  # noqa: E402

# Shipped inside the package, so that chapter 10 reads it from any folder (softmaxbook.data).
RESULTS = Path(__file__).resolve().parents[1] / "softmaxbook" / "data" / "cpu_softmax.json"
SHAPES = [(4096, 4096), (65536, 256), (256, 65536), (16, 1_000_000)]
DTYPES = [np.float32, np.float64]
#: The goals, each checked on every shape and dtype (issue 12; memory from issue 5).
GOALS = {"compiled_1_over_copy": 1.7,         # compiled kernel, one thread: time / copy
         "compiled_2_over_copy": 1.2,         # the same on two threads
         "compiled_faster_than_torch": True,  # same thread count; only where torch is installed
         "numpy_fast_over_copy": 3.5,         # fast_softmax (per-row shift), out=
         "accurate_over_scipy": 1.5,          # softmaxbook.softmax / scipy.special.softmax
         "fastest_speedup_vs_scipy": 2.0,     # the book's fastest NumPy softmax vs SciPy
         "memory_not_above_scipy": True, "softmax_extra_memory": 1.0}

#: Work space a blocked function may use besides its output (one block; see softmaxbook._rows).
WORK_SPACE_BYTES = 2 * 1024 * 1024


# --- the implementations (each takes the input and a preallocated output) -----------------------

def copy(z, out):
    np.copyto(out, z)
    return out


def textbook(z, out):
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def scipy_softmax(z, out):
    return ss.softmax(z, axis=-1)


def in_place(z, out):
    """Whole-array operations written into ``out``: no temporaries of the array's size."""
    m = np.max(z, axis=-1, keepdims=True)
    np.subtract(z, m, out=out)
    np.exp(out, out=out)
    s = np.sum(out, axis=-1, keepdims=True)
    np.divide(out, s, out=out)
    return out


def blocked_out(z, out):
    return sb.fast_softmax(z, out=out)


def blocked_new(z, out):
    return sb.fast_softmax(z)


def online(z, out):
    return sb.online_softmax(z, block=4096)


def accurate(z, out):
    return sb.softmax(z)


def compiled_1(z, out):
    return sb.softmax_kernel(z, out=out, threads=1)


def compiled_2(z, out):
    return sb.softmax_kernel(z, out=out, threads=2)


def exp_only(z, out):
    """Not a softmax: np.exp alone, for the arithmetic's cost (errors are not checked)."""
    return np.exp(z, out=out)


try:  # an optional peer: measured where installed, never required
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None


def _torch(threads):
    """torch.softmax into the same preallocated output as every other implementation
    (``out=`` a tensor sharing its memory): a new output tensor each call would add the
    page faults of fresh memory to torch's time."""
    def run(z, out):
        torch.set_num_threads(threads)
        torch.softmax(torch.from_numpy(z), dim=-1, out=torch.from_numpy(out))
        return out
    return run


IMPLEMENTATIONS = {
    "copy": (copy, "np.copyto into a preallocated array: one read, one write"),
    "textbook": (textbook, "exp(z - max) / sum, whole arrays, new temporaries"),
    "scipy": (scipy_softmax, "scipy.special.softmax"),
    "in-place": (in_place, "whole-array steps written into a preallocated out="),
    "blocked, out=": (blocked_out, "softmaxbook.fast_softmax(z, out=...): row blocks in cache"),
    "blocked, new output": (blocked_new, "softmaxbook.fast_softmax(z): the same, allocating its output"),
    "online": (online, "softmaxbook.online_softmax(z, block=4096): online normalizer, two passes"),
    "accurate": (accurate, "softmaxbook.softmax(z): the accurate default"),
    "compiled, 1 thread": (compiled_1, "softmaxbook.softmax_kernel(z, out=..., threads=1): numba row kernel"),
    "compiled, 2 threads": (compiled_2, "softmaxbook.softmax_kernel(z, out=..., threads=2)"),
    "np.exp": (exp_only, "np.exp(z, out=...) alone (not a softmax): the arithmetic's yardstick"),
}
if torch is not None:  # pragma: no cover - depends on the machine
    IMPLEMENTATIONS["torch, 1 thread"] = (_torch(1), "torch.softmax(dim=-1, out=...), 1 thread")
    IMPLEMENTATIONS["torch, 2 threads"] = (_torch(2), "torch.softmax(dim=-1, out=...), 2 threads")
NOT_SOFTMAX = {"copy", "np.exp", "np.exp, in cache", "compiled, in cache"}
PURE_NUMPY_BOOK = ["textbook", "in-place", "blocked, out=", "blocked, new output", "online"]
COMPILED = ["compiled, 1 thread", "compiled, 2 threads"]


def machine():
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mhz = None
    try:
        mhz = [float(line.split(":", 1)[1]) for line in
               Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("cpu MHz")][0]
    except (OSError, IndexError, ValueError):
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "softmaxbook": sb.__version__, "numba": _numba_version(), "lscpu": _lscpu(),
            "cpu_mhz": mhz, "torch": None if torch is None else torch.__version__,
            "threads": "1, except the compiled kernel's 2-thread runs and torch's 2-thread runs"}


def _numba_version():
    try:
        import numba
        return numba.__version__
    except ImportError:
        return None


def _lscpu():
    """Model, caches and frequency from lscpu (empty where it is not available)."""
    import subprocess
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    keep = ("Model name", "CPU family", "Model", "CPU(s)", "L1d cache", "L2 cache", "L3 cache",
            "CPU max MHz", "BogoMIPS", "Hypervisor vendor", "Flags")
    info = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keep:
            value = value.strip()
            if key.strip() == "Flags":
                value = " ".join(f for f in value.split() if f.startswith(("avx", "fma")))
            info[key.strip()] = value
    return info


def max_relative_error(got, ref):
    """Largest relative error; a NaN where the reference has none (or the reverse) is inf."""
    got = np.asarray(got, dtype=np.float64)
    if not np.array_equal(np.isnan(got), np.isnan(ref)):
        return float("inf")
    ok = ~np.isnan(ref)
    scale = np.maximum(np.abs(ref[ok]), np.finfo(np.float32).tiny)
    return float(np.max(np.abs(got[ok] - ref[ok]) / scale))


# --- memory: peak extra allocation, as a multiple of the input's size ---------------------------

def peak_extra(fn, z):
    """Peak memory allocated during ``fn(z)`` (tracemalloc sees NumPy's buffers), / z.nbytes."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        res = fn(z)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    del res
    return peak / z.nbytes


T_MEM = 0.7
MEMORY_CALLS = {
    # name: (softmaxbook call, the SciPy call that computes the same thing)
    "softmax": (lambda z: sb.softmax(z), lambda z: ss.softmax(z, axis=-1)),
    "softmax, temperature": (lambda z: sb.softmax(z, temperature=T_MEM),
                             lambda z: ss.softmax(z / T_MEM, axis=-1)),
    "log_softmax": (lambda z: sb.log_softmax(z), lambda z: ss.log_softmax(z, axis=-1)),
    "logsumexp": (lambda z: sb.logsumexp(z), lambda z: ss.logsumexp(z, axis=-1)),
    "fast_softmax": (lambda z: sb.fast_softmax(z), lambda z: ss.softmax(z, axis=-1)),
    "fast_softmax, out=": (None, lambda z: ss.softmax(z, axis=-1)),
    "online_softmax": (lambda z: sb.online_softmax(z, block=4096), lambda z: ss.softmax(z, axis=-1)),
    "softmax, axis=0 of z.T": (lambda z: sb.softmax(z.T, axis=0), lambda z: ss.softmax(z.T, axis=0)),
}


def measure_memory(z):
    out = np.empty_like(z)
    rows = {}
    for name, (ours, theirs) in MEMORY_CALLS.items():
        if ours is None:
            ours = lambda a: sb.fast_softmax(a, out=out)  # noqa: E731
        with np.errstate(all="ignore"):
            rows[name] = {"softmaxbook": peak_extra(ours, z), "scipy": peak_extra(theirs, z)}
    return rows


def benchmark_input(dtype, shape, seed=0):
    """3 x standard normal logits, with one row in 16 made adversarial.

    Those rows have maxima far from the others (offsets up to +-1000 for float64,
    +-100 for float32, so that no shift shared between rows could serve them),
    and a few hold NaN, +inf, -inf entries or only -inf: the speed and accuracy
    of every implementation are measured on them too.
    """
    rng = np.random.default_rng(seed)
    z = 3.0 * rng.standard_normal(shape)
    n = shape[0]
    wild = np.arange(0, n, 16)
    span = 1000.0 if np.dtype(dtype) == np.float64 else 100.0
    z[wild] += rng.uniform(-span, span, (len(wild), 1))
    if n >= 64:
        z[wild[1], 0] = np.nan
        z[wild[2], 1] = np.inf
        z[wild[3], ::3] = -np.inf
        z[wild[-1]] = -np.inf
    return z.astype(dtype)


def stats(times):
    """Median, minimum and interquartile range of a list of times (seconds)."""
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return {"median_seconds": float(med), "min_seconds": float(np.min(times)),
            "iqr_seconds": [float(q1), float(q3)], "times": [float(t) for t in times]}


def interleaved(fns, z, out, rounds, warmup, ref):
    """Time every function of ``fns`` (name: fn(z, out)) in rotated, interleaved rounds;
    returns the times and each softmax's largest relative error against ``ref``."""
    names = list(fns)
    times = {name: [] for name in names}
    errors = {}
    for name in names:
        for _ in range(warmup):
            res = fns[name](z, out)
        errors[name] = (0.0 if name in NOT_SOFTMAX or ref is None
                        else max_relative_error(res, ref))
        del res
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]   # rotate to spread drift
        for name in order:
            t0 = time.perf_counter()
            res = fns[name](z, out)
            times[name].append(time.perf_counter() - t0)
            del res
    return times, errors


#: Input bytes of the in-cache arrays: input and output together (512 KiB) stay in a core's
#: L2 cache (1 MiB or more on the machines this ran on).
IN_CACHE_BYTES = 256 * 1024


def in_cache(fn, z):
    """``fn`` run on a small, cache-resident array like ``z`` as many times as it takes to
    process as many entries as ``z`` holds: the time of the arithmetic alone, with no
    main-memory traffic, comparable with the copy of ``z`` measured in the same rounds.
    Rows as in ``z`` (or of one 4096-entry chunk, for rows longer than that)."""
    K = min(z.shape[-1], 4096)
    rows = max(1, min(IN_CACHE_BYTES // (K * z.itemsize), z.size // K))
    # friendly logits (3 x standard normal), like most of z's rows; z's adversarial rows
    # would send np.exp down its slow paths for overflow
    small = (3.0 * np.random.default_rng(4).standard_normal((rows, K))).astype(z.dtype)
    small_out = np.empty_like(small)
    repeat = -(-z.size // small.size)

    def run(_z, _out):
        for _ in range(repeat):
            fn(small, small_out)
        return small_out
    return run, repeat * small.size


def compiled_in_cache(z):
    """The compiled kernel's arithmetic alone, as :func:`in_cache` measures ``np.exp``'s, but
    with the repetitions looped in compiled code: a call of ``softmax_kernel`` from Python
    costs microseconds (checks of the arguments), which on a cache-sized array would be
    charged to the arithmetic. The same compiled row loops (one thread, ordinary stores:
    the output stays in the cache). None without numba."""
    if not sb.kernel.HAVE_NUMBA:
        return None
    from numba import njit

    from softmaxbook import kernel as k

    @njit(cache=False)
    def repeat_rows(x, b, o, n, K, times):
        for _ in range(times):
            k._rows_one(x, b, o, n, K, False, False, 0, False, 0, True)

    K = min(z.shape[-1], 4096)
    rows = max(1, min(IN_CACHE_BYTES // (K * z.itemsize), z.size // K))
    small = (3.0 * np.random.default_rng(4).standard_normal((rows, K))).astype(z.dtype)
    small_out = sb.kernel._aligned_empty(small.shape, small.dtype)
    repeat = -(-z.size // small.size)
    flat, o = small.reshape(-1), small_out.reshape(-1)
    bits = flat.view(np.int32 if z.dtype == np.float32 else np.int64)

    def run(_z, _out):
        repeat_rows(flat, bits, o, rows, K, repeat)
        return small_out
    return run, repeat * small.size


def aligned_output(z):
    """The output every implementation writes into: like ``z``, on a 64-byte boundary (a
    cache line; NumPy promises 16 bytes), so that no implementation's speed depends on
    where the allocator happened to put it."""
    return sb.kernel._aligned_empty(z.shape, z.dtype)


def measure(dtype, shape, rounds, warmup, seed=0):
    z = benchmark_input(dtype, shape, seed)
    ref = sb.softmax(z.astype(np.float64))
    out = aligned_output(z)
    fns = {name: v[0] for name, v in IMPLEMENTATIONS.items()}
    fns["np.exp, in cache"], n_exp = in_cache(exp_only, z)
    fns["compiled, in cache"], n_kern = compiled_in_cache(z) or in_cache(compiled_1, z)
    times, errors = interleaved(fns, z, out, rounds, warmup, ref)
    for name, n in (("np.exp, in cache", n_exp), ("compiled, in cache", n_kern)):
        times[name] = [t * z.size / n for t in times[name]]   # per z.size entries
    med = {name: float(np.median(v)) for name, v in times.items()}
    row = {"dtype": np.dtype(dtype).name, "shape": list(shape), "copy_seconds": med["copy"],
           "copy_gbs": 2 * z.nbytes / med["copy"] / 1e9,
           "exp_ns_per_entry": med["np.exp"] / z.size * 1e9,
           "in_cache_entries": {"np.exp, in cache": n_exp, "compiled, in cache": n_kern},
           "impls": {}, "memory": measure_memory(z)}
    for name in fns:
        row["impls"][name] = dict(stats(times[name]), **{
            "over_copy": med[name] / med["copy"],
            "min_over_copy": min(times[name]) / min(times["copy"]),
            "speedup_vs_scipy": med["scipy"] / med[name],
            "max_relative_error": errors[name],
        })
    return row


def check_outputs(row):
    limit = 1e-4 if row["dtype"] == "float32" else 1e-10
    bad = {k: v["max_relative_error"] for k, v in row["impls"].items() if v["max_relative_error"] > limit}
    if bad:
        raise AssertionError(f"{row['dtype']} {row['shape']}: outputs differ from the float64 reference: {bad}")


# --- the ablation: one change at a time ---------------------------------------------------------

def _numpy_blocked(shift, divide):
    """Blocks of rows of about 2 MiB, whole-array NumPy steps inside each block (in cache).

    ``shift="row"`` subtracts each row's maximum; ``shift="block"`` one maximum for the whole
    block (fast and wrong for rows far from the block's maximum: kept only to measure it).
    ``divide`` divides by the sums instead of multiplying by their reciprocals."""
    def run(z, out):
        rows = max(1, WORK_SPACE_BYTES // (z.shape[1] * z.itemsize))
        for r0 in range(0, z.shape[0], rows):
            x, o = z[r0:r0 + rows], out[r0:r0 + rows]
            m = x.max(axis=1, keepdims=True) if shift == "row" else x.max()
            np.subtract(x, m, out=o)
            np.exp(o, out=o)
            s = o.sum(axis=1, keepdims=True)
            if divide:
                np.divide(o, s, out=o)
            else:
                np.multiply(o, 1 / s, out=o)
        return out
    return run


def _compiled_three_pass(threads=1):
    """A compiled kernel that reads a whole row three times (max; exps and sum; scale), for
    the online normalizer's ablation: the same compiled loops as softmax_kernel (keys, the
    unclamped exponential, scaling), but no chunks (so nothing of a long row is in the cache
    when the next pass comes) and no key reads overlapped with the exps. Rows are shared
    between ``threads`` threads. Only for friendly data (no entry more than 87 below its
    row's maximum). None without numba."""
    if not sb.kernel.HAVE_NUMBA:
        return None
    import numba
    from numba import njit, prange

    from softmaxbook import kernel as k

    @njit(cache=False, parallel=True)
    def rows(x, bx, o, parts):
        n, K = x.shape
        per = (n + parts - 1) // parts
        for c in prange(parts):
            for i in range(c * per, min(n, (c + 1) * per)):
                hi, lo = k._keys(bx[i], 0, K)
                m = k._value(hi, bx[i])
                s = 0.0
                B = k._SUM_BYTES // x.itemsize
                for a in range(0, K, B):
                    part, _ = k._expsum(x[i], a, o[i], a, m, min(K, a + B) - a,
                                        False)
                    s += part
                k._scale(o[i], k._cast(1.0 / s, o[i]), 0, K)

    def run(z, out):
        previous = numba.get_num_threads()
        numba.set_num_threads(max(previous, threads))
        try:
            rows(z, z.view(np.int32 if z.dtype == np.float32 else np.int64), out,
                 threads)
        finally:
            numba.set_num_threads(previous)
        return out
    return run


def ablation_fns(dtype, long_rows=False):
    fns = {
        "copy": copy,
        "np.exp": exp_only,
        "whole arrays, out=": in_place,
        "NumPy blocks, per-row shift, divide": _numpy_blocked("row", True),
        "NumPy blocks, per-row shift": _numpy_blocked("row", False),
        "NumPy blocks, one shift per block": _numpy_blocked("block", False),
        "NumPy blocks, shift only if needed": blocked_out,
        "compiled": compiled_1,
        "compiled, 2 threads": compiled_2,
        "compiled, ordinary stores": lambda z, out: sb.softmax_kernel(z, out=out,
                                                                      _stream=False),
        "compiled, no prefetch": lambda z, out: sb.softmax_kernel(z, out=out,
                                                                  _prefetch=False),
        "compiled, writes not overlapped": lambda z, out: sb.softmax_kernel(
            z, out=out, _overlap=False),
    }
    if not long_rows:   # rows of several chunks are scaled chunk by chunk, never divided
        fns["compiled, divide"] = lambda z, out: sb.softmax_kernel(z, out=out, _divide=True)
    if np.dtype(dtype) == np.float64:
        fns["compiled, scalar libm exp"] = lambda z, out: sb.softmax_kernel(z, out=out, _exp="libm")
    for threads, label in ((1, ""), (2, ", 2 threads")):
        three = _compiled_three_pass(threads)
        if three is not None:
            fns["compiled, three passes per row" + label] = three
    return fns


#: Shapes of the ablation: short rows (each row in cache) and long rows (a row of 4 or 8 MB
#: does not fit the L2 cache: the online normalizer's one read against three).
ABLATION_SHAPES = [(4096, 4096), (16, 1_000_000)]
#: Rows longer than the last-level cache (512 MiB in all; only the variants that differ in
#: how often a row is read): the online normalizer's one read against three.
BEYOND_CACHE_SHAPES = {np.dtype(np.float32): (4, 2 ** 25), np.dtype(np.float64): (2, 2 ** 25)}
BEYOND_CACHE_FNS = ("copy", "np.exp", "compiled", "compiled, 2 threads",
                    "compiled, three passes per row", "compiled, three passes per row, 2 threads")
#: Adversarial-free input for the ablation: the one-shift-per-block variant is then right,
#: and the other variants are timed on the same friendly data.
ABLATION_INPUT = "3 x standard normal logits (no adversarial rows)"


def measure_ablation(dtype, shape, rounds, warmup, seed=1):
    z = (3.0 * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)
    ref = sb.softmax(z.astype(np.float64))
    out = aligned_output(z)
    fns = ablation_fns(dtype, long_rows=shape[1] > sb.kernel._CHUNK)
    if tuple(shape) in BEYOND_CACHE_SHAPES.values():
        fns = {n: f for n, f in fns.items() if n in BEYOND_CACHE_FNS}
    times, errors = interleaved(fns, z, out, rounds, warmup, ref)
    copy_t = float(np.median(times["copy"]))
    row = {"dtype": np.dtype(dtype).name, "shape": list(shape), "copy_seconds": copy_t, "impls": {}}
    for name in fns:
        row["impls"][name] = dict(stats(times[name]), **{
            "over_copy": float(np.median(times[name])) / copy_t,
            "max_relative_error": errors[name]})
    return row


# --- cost against the number of classes K (seed 004: "high cost when there are many classes") --

COST_ROWS = 32
COST_KS = [2 ** p for p in range(8, 21, 2)]


def measure_cost(rounds, warmup, Ks=COST_KS, seed=2):
    """Time per row of a float32 batch of 32 rows against K: compiled, NumPy and SciPy."""
    fns = {"copy": copy, "compiled, 1 thread": compiled_1, "blocked, out=": blocked_out,
           "scipy": scipy_softmax}
    rows = []
    for K in Ks:
        z = (3.0 * np.random.default_rng(seed).standard_normal((COST_ROWS, K))).astype(np.float32)
        out = aligned_output(z)
        times, _ = interleaved(fns, z, out, rounds, warmup, None)
        rows.append({"K": K, "ns_per_entry": {n: float(np.median(t)) / z.size * 1e9
                                              for n, t in times.items()}})
    return rows


def goals(rows):
    verdict = []
    have_torch = "torch, 1 thread" in rows[0]["impls"]
    for row in rows:
        imp = row["impls"]
        fastest = min(PURE_NUMPY_BOOK, key=lambda k: imp[k]["median_seconds"])
        v = {
            "dtype": row["dtype"], "shape": row["shape"], "fastest": fastest,
            "fastest_over_copy": imp[fastest]["over_copy"],
            "fastest_speedup_vs_scipy": imp[fastest]["speedup_vs_scipy"],
            "numpy_fast_over_copy": imp["blocked, out="]["over_copy"],
            "accurate_over_scipy": imp["accurate"]["median_seconds"] / imp["scipy"]["median_seconds"],
            "memory_not_above_scipy": all(m["softmaxbook"] <= m["scipy"] for m in row["memory"].values()),
            "compiled_1_over_copy": imp["compiled, 1 thread"]["over_copy"],
            "compiled_2_over_copy": imp["compiled, 2 threads"]["over_copy"],
            "softmax_extra_memory": max(row["memory"]["softmax"]["softmaxbook"],
                                        row["memory"]["fast_softmax, out="]["softmaxbook"] + 1.0),
            # one block of work space, plus one float64 row where a float16/32 row is
            # longer than a block (softmax computes such a row whole, in float64)
            "work_space_allowance": (WORK_SPACE_BYTES + 8 * row["shape"][1])
            / (int(np.prod(row["shape"])) * np.dtype(row["dtype"]).itemsize),
        }
        if have_torch:
            v["compiled_faster_than_torch"] = all(
                imp[f"compiled, {t}"]["median_seconds"] < imp[f"torch, {t}"]["median_seconds"]
                for t in ("1 thread", "2 threads"))
        verdict.append(v)
    met = {
        "compiled_1_over_copy": all(v["compiled_1_over_copy"] <= GOALS["compiled_1_over_copy"]
                                    for v in verdict),
        "compiled_2_over_copy": all(v["compiled_2_over_copy"] <= GOALS["compiled_2_over_copy"]
                                    for v in verdict),
        # None: torch is not installed here, so the comparison was not made
        "compiled_faster_than_torch": (all(v["compiled_faster_than_torch"] for v in verdict)
                                       if have_torch else None),
        "numpy_fast_over_copy": all(v["numpy_fast_over_copy"] <= GOALS["numpy_fast_over_copy"]
                                    for v in verdict),
        "accurate_over_scipy": all(v["accurate_over_scipy"] <= GOALS["accurate_over_scipy"] for v in verdict),
        "fastest_speedup_vs_scipy": all(v["fastest_speedup_vs_scipy"] >= GOALS["fastest_speedup_vs_scipy"]
                                        for v in verdict),
        "memory_not_above_scipy": all(v["memory_not_above_scipy"] for v in verdict),
        # softmax (and fast_softmax with out=, counted with its output) at most one
        # output's worth of extra memory, plus one block of work space
        "softmax_extra_memory": all(v["softmax_extra_memory"] <= GOALS["softmax_extra_memory"]
                                    + v["work_space_allowance"] for v in verdict),
    }
    return verdict, met


GOAL_LABELS = {
    "compiled_1_over_copy": ("compiled kernel, 1 thread <= {}x copy", "max"),
    "compiled_2_over_copy": ("compiled kernel, 2 threads <= {}x copy", "max"),
    "compiled_faster_than_torch": ("compiled kernel faster than torch.softmax, same threads", None),
    "numpy_fast_over_copy": ("fast_softmax (NumPy, per-row shift) <= {}x copy", "max"),
    "accurate_over_scipy": ("accurate softmax <= {}x SciPy's time", "max"),
    "fastest_speedup_vs_scipy": ("fastest NumPy softmax >= {}x faster than SciPy", "min"),
    "memory_not_above_scipy": ("no function's peak memory above SciPy's same call", None),
    "softmax_extra_memory": ("softmax, fast_softmax(out=) <= {}x extra memory (+ work space)", None),
}


def _status(value):
    return "not measured (torch absent)" if value is None else ("met" if value else "MISSED")


def print_tables(rows, verdict, met, ablation=(), cost=()):
    names = [n for n in rows[0]["impls"] if n != "copy"]
    for row in rows:
        print(f"\n{row['dtype']} {tuple(row['shape'])}: copy {row['copy_seconds'] * 1e3:.2f} ms "
              f"({row['copy_gbs']:.1f} GB/s); np.exp {row['exp_ns_per_entry']:.2f} ns/entry")
        print(f"  {'implementation':22s} {'ms':>8} {'/ copy':>8} {'min/copy':>9} {'IQR / copy':>13} "
              f"{'vs SciPy':>9} {'max rel err':>12}")
        for n in names:
            v = row["impls"][n]
            q1, q3 = (q / row["copy_seconds"] for q in v["iqr_seconds"])
            print(f"  {n:22s} {v['median_seconds'] * 1e3:8.2f} {v['over_copy']:7.2f}x "
                  f"{v['min_over_copy']:8.2f}x {q1:6.2f}-{q3:5.2f}x "
                  f"{v['speedup_vs_scipy']:8.2f}x {v['max_relative_error']:12.1e}")
    for row in ablation:
        print(f"\nAblation, {row['dtype']} {tuple(row['shape'])} ({ABLATION_INPUT}): time / copy")
        for n, v in row["impls"].items():
            print(f"  {n:38s} {v['over_copy']:7.2f}x   max rel err {v['max_relative_error']:.1e}")
    if cost:
        print(f"\nCost against K, float32, {COST_ROWS} rows: ns per entry")
        cols = list(cost[0]["ns_per_entry"])
        print(f"  {'K':>8}" + "".join(f"{c:>20}" for c in cols))
        for c in cost:
            print(f"  {c['K']:8d}" + "".join(f"{c['ns_per_entry'][n]:20.3f}" for n in cols))
    print("\nGoals (ratios measured side by side in this run, median of interleaved rounds):")
    print(f"  {'dtype':8s} {'shape':>16} {'comp. 1t':>9} {'comp. 2t':>9} {'fast/copy':>10} "
          f"{'acc./SciPy':>11} {'fastest vs SciPy':>17}")
    for v in verdict:
        print(f"  {v['dtype']:8s} {str(tuple(v['shape'])):>16} {v['compiled_1_over_copy']:8.2f}x "
              f"{v['compiled_2_over_copy']:8.2f}x {v['numpy_fast_over_copy']:9.2f}x "
              f"{v['accurate_over_scipy']:10.2f}x {v['fastest_speedup_vs_scipy']:16.2f}x")
    for key, (label, worst) in GOAL_LABELS.items():
        text = label.format(GOALS[key])
        if worst:
            w = (max if worst == "max" else min)(v[key] for v in verdict)
            text += f" (worst {w:.2f}x)"
        print(f"  {text:72s} {_status(met[key])}")


def cpu_times():
    """(steal, total) jiffies of all CPUs from /proc/stat, or None where unavailable."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    steal = values[7] if len(values) > 7 else 0
    return steal, sum(values[:8])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds per configuration (>= 7)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="small shapes, for a smoke test; no JSON")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.rounds < 7 and not args.quick:
        parser.error("use at least 7 rounds")
    shapes = [(64, 64), (16, 4096)] if args.quick else SHAPES
    start = cpu_times()
    rows = []
    for dtype in DTYPES:
        for shape in shapes:
            row = measure(dtype, shape, args.rounds, args.warmup)
            check_outputs(row)
            rows.append(row)
    ablation = []
    for d in DTYPES:
        ab_shapes = ([(64, 64), (2, 20_000)] if args.quick
                     else ABLATION_SHAPES + [BEYOND_CACHE_SHAPES[np.dtype(d)]])
        ablation += [measure_ablation(d, s, args.rounds, args.warmup) for s in ab_shapes]
    cost = (measure_cost(3, 1, Ks=[256, 4096]) if args.quick
            else measure_cost(args.rounds, args.warmup))
    end = cpu_times()
    # time the hypervisor gave to other guests while this ran: a noisy run shows it
    steal = (None if start is None or end is None or end[1] == start[1]
             else 100 * (end[0] - start[0]) / (end[1] - start[1]))
    verdict, met = goals(rows)
    print_tables(rows, verdict, met, ablation, cost)
    if steal is not None:
        print(f"\nCPU time stolen by the hypervisor during the run: {steal:.1f} %"
              + ("  (noisy: rerun on a quieter machine)" if steal > 2 else ""))
    result = {
        "benchmark": "cpu_softmax", "date": time.strftime("%Y-%m-%d"),
        "machine": dict(machine(), steal_percent=steal),
        "settings": {"rounds": args.rounds, "warmup": args.warmup, "statistic": "median",
                     "input": benchmark_input.__doc__.split("\n\n")[0].strip(),
                     "ablation_input": ABLATION_INPUT, "cost_rows": COST_ROWS,
                     "memory": "tracemalloc peak during one call, minus the memory before it, "
                               "divided by the input's size (the output counts)"},
        "implementations": {k: v[1] for k, v in IMPLEMENTATIONS.items()},
        "goals": GOALS, "verdict": verdict, "met": met, "results": rows,
        "ablation": ablation, "cost_vs_K": cost,
    }
    if not args.quick:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1))
        print(f"\nwrote {args.output}")
    return result


if __name__ == "__main__":
    main()
