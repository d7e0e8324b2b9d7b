"""Triton softmax kernels written for the book (chapter 10).

Three kernels, all over rows of a 2-d array with the classes on the last axis:

* ``fused``: one program per row keeps the whole row in registers: one read and one write
  per entry, the traffic of a copy. For rows up to a few thousand entries.
* ``online``: one program per row walks the row in blocks twice: first the online normalizer
  (a running max and rescaled sum per lane, merged at the end), then the output. Any row
  length; two reads and one write.
* ``split_row``: for few, very long rows. A first kernel spreads each row over many programs,
  each computing the pair (max, sum) of its chunk; a second kernel, again one program per
  chunk, merges the row's pairs with the associative merge of chapter 10 and writes its chunk.

Every kernel computes in float32 (bfloat16 input is widened) and stores in the output's dtype.
Loop bounds are compile-time constants (``tl.constexpr``), so a kernel is compiled once per row
length; this also keeps Triton's interpreter happy with NumPy 2.
The launchers take tensors that have ``shape``, ``stride()`` and ``data_ptr()``: CUDA tensors
for the benchmark, or NumPy arrays wrapped in :class:`NumpyTensor` for a CPU check under
Triton's interpreter (``TRITON_INTERPRET=1``, set before importing triton).
"""

from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

__all__ = ["NumpyTensor", "softmax_fused", "softmax_online", "softmax_split_row", "choose_kernel"]


# --- the kernels --------------------------------------------------------------------------------

@triton.jit
def _fused_kernel(x_ptr, y_ptr, n_cols, stride_x, stride_y, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    mask = offs < n_cols
    x = tl.load(x_ptr + row * stride_x + offs, mask=mask, other=-float("inf")).to(tl.float32)
    m = tl.max(x, axis=0)
    e = tl.exp(x - m)
    s = tl.sum(e, axis=0)
    tl.store(y_ptr + row * stride_y + offs, (e / s).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _lane_update(m_vec, d_vec, x):
    # online update of per-lane (max, sum); -inf lanes contribute nothing
    m_new = tl.maximum(m_vec, x)
    alpha = tl.where(m_vec == m_new, 1.0, tl.exp(m_vec - m_new))
    beta = tl.where(x == -float("inf"), 0.0, tl.exp(x - m_new))
    return m_new, d_vec * alpha + beta


@triton.jit
def _lanes_to_pair(m_vec, d_vec):
    # merge the lanes' pairs into one (max, sum)
    m = tl.max(m_vec, axis=0)
    scale = tl.where(m_vec == m, 1.0, tl.exp(m_vec - m))
    return m, tl.sum(d_vec * scale, axis=0)


@triton.jit
def _online_kernel(x_ptr, y_ptr, stride_x, stride_y, n_cols: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    m_vec = tl.full((BLOCK,), -float("inf"), tl.float32)
    d_vec = tl.zeros((BLOCK,), tl.float32)
    for start in tl.range(0, n_cols, BLOCK):
        cols = start + offs
        x = tl.load(x_ptr + row * stride_x + cols, mask=cols < n_cols, other=-float("inf")).to(tl.float32)
        m_vec, d_vec = _lane_update(m_vec, d_vec, x)
    m, d = _lanes_to_pair(m_vec, d_vec)
    for start in tl.range(0, n_cols, BLOCK):
        cols = start + offs
        mask = cols < n_cols
        x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=-float("inf")).to(tl.float32)
        tl.store(y_ptr + row * stride_y + cols, (tl.exp(x - m) / d).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _partial_kernel(x_ptr, m_ptr, d_ptr, n_cols, n_chunks, stride_x, CHUNK: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    chunk = tl.program_id(1)
    offs = tl.arange(0, BLOCK)
    m_vec = tl.full((BLOCK,), -float("inf"), tl.float32)
    d_vec = tl.zeros((BLOCK,), tl.float32)
    for start in tl.range(0, CHUNK, BLOCK):
        cols = chunk * CHUNK + start + offs
        x = tl.load(x_ptr + row * stride_x + cols, mask=cols < n_cols, other=-float("inf")).to(tl.float32)
        m_vec, d_vec = _lane_update(m_vec, d_vec, x)
    m, d = _lanes_to_pair(m_vec, d_vec)
    tl.store(m_ptr + row * n_chunks + chunk, m)
    tl.store(d_ptr + row * n_chunks + chunk, d)


@triton.jit
def _merge_write_kernel(x_ptr, y_ptr, m_ptr, d_ptr, n_cols, n_chunks, stride_x, stride_y,
                        CHUNK: tl.constexpr, BLOCK: tl.constexpr, CHUNKS_POW2: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    chunk = tl.program_id(1)
    k = tl.arange(0, CHUNKS_POW2)
    ms = tl.load(m_ptr + row * n_chunks + k, mask=k < n_chunks, other=-float("inf"))
    ds = tl.load(d_ptr + row * n_chunks + k, mask=k < n_chunks, other=0.0)
    m, d = _lanes_to_pair(ms, ds)          # the associative merge of all the row's pairs
    offs = tl.arange(0, BLOCK)
    for start in tl.range(0, CHUNK, BLOCK):
        cols = chunk * CHUNK + start + offs
        mask = cols < n_cols
        x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=-float("inf")).to(tl.float32)
        tl.store(y_ptr + row * stride_y + cols, (tl.exp(x - m) / d).to(y_ptr.dtype.element_ty), mask=mask)


# --- launchers ----------------------------------------------------------------------------------

def _rows_cols(x, y):
    n_rows, n_cols = x.shape
    if tuple(y.shape) != (n_rows, n_cols):
        raise ValueError(f"output shape {tuple(y.shape)} differs from input shape {(n_rows, n_cols)}")
    if x.stride()[1] != 1 or y.stride()[1] != 1:
        raise ValueError("the last axis must be contiguous")
    return n_rows, n_cols


def softmax_fused(x, y, num_warps=None):
    """Row softmax of ``x`` into ``y`` with one program per row (rows up to 65536 entries)."""
    n_rows, n_cols = _rows_cols(x, y)
    block = triton.next_power_of_2(n_cols)
    if block > 65536:
        raise ValueError(f"rows of {n_cols} entries are too long for the fused kernel; use online or split_row")
    warps = num_warps or (4 if block <= 2048 else 8 if block <= 8192 else 16)
    _fused_kernel[(n_rows,)](x, y, n_cols, x.stride()[0], y.stride()[0], BLOCK=block, num_warps=warps)
    return y


def softmax_online(x, y, block=4096, num_warps=8):
    """Row softmax with the online normalizer: one program per row, two passes over it."""
    n_rows, n_cols = _rows_cols(x, y)
    block = min(block, triton.next_power_of_2(n_cols))
    _online_kernel[(n_rows,)](x, y, x.stride()[0], y.stride()[0], n_cols=n_cols, BLOCK=block, num_warps=num_warps)
    return y


def softmax_split_row(x, y, m_buf, d_buf, chunk=16384, block=2048, num_warps=4):
    """Row softmax with each row spread over ``ceil(n_cols / chunk)`` programs.

    ``m_buf`` and ``d_buf`` are float32 work arrays with at least ``n_rows * n_chunks`` entries.
    """
    n_rows, n_cols = _rows_cols(x, y)
    block = min(block, triton.next_power_of_2(n_cols))
    chunk = max(block, min(chunk, triton.next_power_of_2(n_cols)))
    n_chunks = triton.cdiv(n_cols, chunk)
    if m_buf.shape[0] < n_rows * n_chunks or d_buf.shape[0] < n_rows * n_chunks:
        raise ValueError(f"work arrays need {n_rows * n_chunks} entries")
    grid = (n_rows, n_chunks)
    _partial_kernel[grid](x, m_buf, d_buf, n_cols, n_chunks, x.stride()[0],
                          CHUNK=chunk, BLOCK=block, num_warps=num_warps)
    _merge_write_kernel[grid](x, y, m_buf, d_buf, n_cols, n_chunks, x.stride()[0], y.stride()[0],
                              CHUNK=chunk, BLOCK=block, CHUNKS_POW2=triton.next_power_of_2(n_chunks),
                              num_warps=num_warps)
    return y


def choose_kernel(n_rows, n_cols, n_programs_wanted=264):
    """The kernel the benchmark uses for a shape: fused for short rows; split-row when there are
    too few rows to occupy the GPU; otherwise online."""
    if n_cols <= 16384:
        return "fused"
    if n_rows < n_programs_wanted:
        return "split_row"
    return "online"


# --- a CPU stand-in for tensors, for Triton's interpreter ---------------------------------------

class _Storage:
    def __init__(self, arr):
        self.arr = arr

    def data_ptr(self):
        return self.arr.ctypes.data

    def cpu(self):
        return self

    def copy_(self, other):
        pass  # "device" and host share the same NumPy memory


class NumpyTensor:
    """Just enough of a tensor for Triton's interpreter; the data stay in a NumPy array."""

    def __init__(self, arr):
        self.arr = arr

    @property
    def dtype(self):
        return self.arr.dtype

    @property
    def shape(self):
        return self.arr.shape

    def data_ptr(self):
        return self.arr.ctypes.data

    def untyped_storage(self):
        return _Storage(self.arr)

    def new_empty(self, *args, **kwargs):
        return NumpyTensor(np.empty(0, self.arr.dtype))

    def set_(self, storage, offset, size, stride):
        self.arr = storage.arr
        return self

    def storage_offset(self):
        return 0

    def size(self):
        return self.arr.shape

    def stride(self):
        return tuple(s // self.arr.itemsize for s in self.arr.strides)

    def copy_(self, other):
        pass
