"""Apply a row kernel to every slice of an array along one axis, block by block.

Every function of the package that works "along ``axis``" goes through
:func:`map_rows`. It gives three guarantees by construction:

* **the input is never written**: a kernel receives a *read-only* view of a
  block of rows (a write would raise), or a private contiguous copy of it;
* **rows are independent**: a kernel sees whole rows and must compute each row
  from that row alone (the kernels do: every reduction is ``axis=1``);
* **memory stays small**: besides the output, only one block of rows (about
  ``block_bytes``, and at most a quarter of the input's size unless one row
  needs more) of work space is alive at a time, whatever the layout. No
  transposed copy of the whole input is made when the rows can be reached by a
  view (any 2-d layout, and N-d arrays whose other axes merge).
"""

from __future__ import annotations

import contextlib

import numpy as np

#: Bytes of work space per block of rows: small enough to stay in a core's L2
#: cache, large enough that NumPy's per-call overhead is negligible.
BLOCK_BYTES = 256 * 1024


#: Rows at least this long get :func:`unbuffered`'s treatment (below it, NumPy's
#: per-row overhead outweighs what the buffers cost).
UNBUFFERED_MIN = 512


@contextlib.contextmanager
def unbuffered(row_len):
    """Run NumPy's element-wise ufuncs on ``(r, row_len)`` blocks without buffering.

    An element-wise ufunc on a C-contiguous ``(r, K)`` block with a broadcast
    ``(r, 1)`` operand (``x - m``, ``e * (1 / s)``) copies its operands through
    buffers of ``np.getbufsize()`` entries (8192) whenever a row is shorter than
    that buffer, which costs two to three times the arithmetic (measured for
    chapter 10). With the buffer size lowered to at most the row length, the
    ufunc runs row by row on the arrays themselves. Element-wise results do not
    depend on the buffering; reductions, whose summation order could, are left
    outside this context by the callers.
    """
    size = row_len - row_len % 16
    old = np.getbufsize()
    if row_len < UNBUFFERED_MIN or size >= old:
        yield
        return
    np.setbufsize(size)
    try:
        yield
    finally:
        np.setbufsize(old)


def rows_per_block(row_len, itemsize=8, block_bytes=BLOCK_BYTES):
    """How many rows of ``row_len`` entries of ``itemsize`` bytes fill a block."""
    return max(1, block_bytes // max(1, row_len * itemsize))


def as_rows(y):
    """A 2-d ``(N, K)`` view of ``y`` (reduced axis last), or ``None`` if a copy is needed."""
    K = y.shape[-1]
    try:
        return np.reshape(y, (-1, K), copy=False)
    except ValueError:
        return None


def as_flat(y):
    """A 1-d view of ``y``, or ``None`` if a copy is needed."""
    try:
        return np.reshape(y, (-1,), copy=False)
    except ValueError:
        return None


def map_rows(a, axis, kernel, out_dtype, *, reduce=False, out=None,
             itemsize=8, block_bytes=BLOCK_BYTES):
    """Run ``kernel(x, o)`` on blocks of the slices of ``a`` along ``axis``.

    ``x`` is a C-contiguous, read-only ``(r, K)`` block in native byte order;
    ``o`` is a C-contiguous writeable ``(r, K)`` block (``(r,)`` if ``reduce``)
    of ``out_dtype`` that the kernel fills. Returns the result with ``a``'s
    shape (without ``axis`` if ``reduce``), in ``out`` when given.

    ``out`` may be ``a`` itself (the same memory with the same layout): each
    block is read completely before its own rows are written, and no other
    block's rows are touched. Partial overlaps must be resolved by the caller.
    ``itemsize`` is the bytes per entry of the kernel's work space, used to size
    the blocks.
    """
    y = np.moveaxis(a, axis, -1)
    K = y.shape[-1]
    lead = y.shape[:-1]
    y2 = as_rows(y)
    if y2 is None:               # N-d layout whose leading axes do not merge
        y2 = np.ascontiguousarray(y).reshape(-1, K)
    if out is None:
        res = np.empty(lead if reduce else lead + (K,), dtype=out_dtype)
        o_full = res
    else:
        res = out
        o_full = out if reduce else np.moveaxis(out, axis, -1)
    o2 = as_flat(o_full) if reduce else as_rows(o_full)
    direct = o2 is not None
    if not direct:
        o2 = np.empty((y2.shape[0],) if reduce else y2.shape, dtype=out_dtype)
    # Small inputs get small blocks: the work space stays below a quarter of the
    # input's size (but holds at least one row).
    rows = rows_per_block(K, itemsize, min(block_bytes, max(a.nbytes // 4, 1)))
    for start in range(0, y2.shape[0], rows):
        xb = y2[start:start + rows]
        if not (xb.flags.c_contiguous and xb.dtype.isnative):
            xb = np.ascontiguousarray(xb, dtype=xb.dtype.newbyteorder("="))
        else:
            xb = xb.view()
        xb.flags.writeable = False
        ob = o2[start:start + rows]
        if ob.flags.c_contiguous:
            kernel(xb, ob)
        else:
            tmp = np.empty(ob.shape, dtype=out_dtype)
            kernel(xb, tmp)
            ob[...] = tmp
    if not direct:
        if reduce:
            o_full[...] = o2.reshape(lead)
        else:
            o_full[...] = o2.reshape(lead + (K,))
    if out is None and not reduce:
        return np.moveaxis(res, -1, axis)
    return res
