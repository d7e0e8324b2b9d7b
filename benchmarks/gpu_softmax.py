"""GPU softmax benchmark: the book's Triton kernels next to a device copy, torch.softmax and an
unfused torch version (chapter 10; needs a CUDA GPU, torch and triton).

For float32 and bfloat16 on 4096×4096, 65536×256, 1024×65536, 32768×32768 and 16×1,000,000 it
times with ``triton.testing.do_bench`` (median over its repetitions) a device-to-device copy of
the input (the bandwidth limit: one read, one write), ``torch.softmax``, an unfused torch
softmax, and the book's kernels from ``gpu_kernels.py`` (fused one-row-per-program, online
two-pass, split-row), checks every output against a float64 reference (on a sample of rows for
the largest shape), and writes ``softmaxbook/data/gpu_softmax.json`` with the device name,
driver, CUDA, torch and triton versions. Goal: the book's kernel chosen per shape within 1.10×
the copy time on every shape and dtype.

Run on a GPU machine: ``python benchmarks/gpu_softmax.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import triton
from triton.testing import do_bench

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_kernels import choose_kernel, softmax_fused, softmax_online, softmax_split_row  # noqa: E402

# Shipped inside the package, so that chapter 10 reads it from any folder (softmaxbook.data).
RESULTS = Path(__file__).resolve().parents[1] / "softmaxbook" / "data" / "gpu_softmax.json"
SHAPES = [(4096, 4096), (65536, 256), (1024, 65536), (32768, 32768), (16, 1_000_000)]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
GOAL = 1.10


def unfused(x):
    e = torch.exp(x.float() - x.float().amax(dim=-1, keepdim=True))
    return (e / e.sum(dim=-1, keepdim=True)).to(x.dtype)


def machine():
    props = torch.cuda.get_device_properties(0)
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        driver = "unknown"
    return {"device": torch.cuda.get_device_name(0), "memory_gib": props.total_memory / 2 ** 30,
            "multiprocessors": props.multi_processor_count, "driver": driver, "cuda": torch.version.cuda,
            "torch": torch.__version__, "triton": triton.__version__}


def max_relative_error(y, x, rows):
    ref = torch.softmax(x[rows].double(), dim=-1)
    err = (y[rows].double() - ref).abs() / ref.clamp_min(torch.finfo(torch.float32).tiny)
    return float(err.max())


def measure(name, dtype, shape):
    torch.manual_seed(0)
    x = 3 * torch.randn(shape, device="cuda", dtype=torch.float32)
    x = x.to(dtype)
    y = torch.empty_like(x)
    n_rows, n_cols = shape
    n_chunks = triton.cdiv(n_cols, 16384)
    m_buf = torch.empty(n_rows * n_chunks, device="cuda", dtype=torch.float32)
    d_buf = torch.empty_like(m_buf)
    impls = {
        "copy": lambda: y.copy_(x),
        "torch.softmax": lambda: torch.softmax(x, dim=-1),
        "torch unfused": lambda: unfused(x),
        "online": lambda: softmax_online(x, y),
        "split_row": lambda: softmax_split_row(x, y, m_buf, d_buf),
    }
    if n_cols <= 65536:
        impls["fused"] = lambda: softmax_fused(x, y)
    rows = torch.arange(n_rows, device="cuda") if n_rows * n_cols <= 2 ** 27 else \
        torch.cat([torch.arange(64, device="cuda"), torch.arange(n_rows - 64, n_rows, device="cuda")])
    out = {}
    for impl, fn in impls.items():
        ms = do_bench(fn, warmup=25, rep=200, return_mode="median")
        res = fn()
        err = 0.0 if impl == "copy" else max_relative_error(res if isinstance(res, torch.Tensor) else y, x, rows)
        limit = 1e-5 if dtype == torch.float32 else 1e-2
        if impl != "copy" and not err < limit:
            raise AssertionError(f"{impl} {name} {shape}: relative error {err:.2e} > {limit}")
        out[impl] = {"median_ms": ms, "max_relative_error": err}
    copy_ms = out["copy"]["median_ms"]
    for v in out.values():
        v["over_copy"] = v["median_ms"] / copy_ms
    chosen = choose_kernel(n_rows, n_cols, 2 * torch.cuda.get_device_properties(0).multi_processor_count)
    best = min((k for k in ("fused", "online", "split_row") if k in out), key=lambda k: out[k]["median_ms"])
    return {"dtype": name, "shape": list(shape), "copy_ms": copy_ms, "impls": out,
            "chosen": chosen, "chosen_over_copy": out[chosen]["over_copy"],
            "best": best, "best_over_copy": out[best]["over_copy"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("gpu_softmax.py needs a CUDA GPU")
    rows = [measure(name, dtype, shape) for name, dtype in DTYPES.items() for shape in SHAPES]
    print(f"{'dtype':9s} {'shape':>16} {'copy ms':>8} | " + " ".join(f"{k:>14s}" for k in rows[0]["impls"] if k != "copy")
          + " | best / copy")
    for r in rows:
        print(f"{r['dtype']:9s} {str(tuple(r['shape'])):>16} {r['copy_ms']:8.3f} | "
              + " ".join(f"{r['impls'][k]['over_copy']:13.2f}x" if k in r["impls"] else f"{'-':>14s}"
                         for k in rows[0]["impls"] if k != "copy")
              + f" | {r['best']} {r['best_over_copy']:.2f}x")
    met = all(r["best_over_copy"] <= GOAL for r in rows)
    print(f"goal: the book's best kernel within {GOAL}x the copy time on every shape and dtype: "
          f"{'met' if met else 'MISSED'}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"benchmark": "gpu_softmax", "date": time.strftime("%Y-%m-%d"),
                                       "machine": machine(), "goal_over_copy": GOAL, "met": met,
                                       "results": rows}, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
