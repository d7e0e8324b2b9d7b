r"""Softmax attention: the dense reference, and a tiled forward and backward pass.

Chapter 11 derives these. For queries :math:`\mathbf Q` (``n x d``), keys :math:`\mathbf K`
(``m x d``) and values :math:`\mathbf V` (``m x e``),

.. math:: \mathbf S = c\,\mathbf Q\mathbf K^\top, \quad
          \mathbf P = \operatorname{softmax}(\mathbf S) \text{ (row by row)}, \quad
          \mathbf O = \mathbf P\mathbf V,

with the scale :math:`c = 1/\sqrt d` unless given. :func:`attention` forms
:math:`\mathbf S` and :math:`\mathbf P` whole; :func:`flash_attention` never holds more than
one ``block x block`` tile of them, keeping a running maximum :math:`m_i` and normaliser
:math:`\ell_i` per query (the online normaliser of chapter 10) and returning, besides
:math:`\mathbf O`, only :math:`L_i = m_i + \log \ell_i`, the log-sum-exp of row :math:`i`;
:func:`flash_attention_backward` recomputes each tile of :math:`\mathbf P` from :math:`L`,
as FlashAttention-2 does (Dao 2024), with :math:`D_i = \sum_j P_{ij}\,dP_{ij}
= \langle d\mathbf O_i, \mathbf O_i\rangle`.

Conventions (the same in all three functions):

* Arrays are batched over leading axes, which broadcast: ``q`` is ``(..., n, d)``, ``k``
  ``(..., m, d)``, ``v`` ``(..., m, e)``. Integer and boolean input becomes float64; the
  result has the common floating dtype of the inputs. The work is done in float64 (float16
  and float32 results are rounded once, at the end). Inputs must be finite.
* ``causal=True`` lets query ``i`` attend to keys ``j <= i`` (the mask aligned at the top
  left, as ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``; for
  ``n != m`` FlashAttention 2.1 and later align it at the bottom right instead).
* A query that may attend to no key at all (a fully masked row) gets an output of zeros and
  :math:`L = -\infty`, and contributes nothing to any gradient: it attends to nothing, so it
  returns nothing. (Masking with :math:`-\infty` alone would give NaN, which spreads through a
  batch; masking with a large finite negative number would give a uniform row, which
  silently attends to the padding. Chapter 11 compares the three.)
* Scores :math:`c\,\mathbf q_i\cdot\mathbf k_j` that overflow the float64 range (finite
  inputs of size about 1e154 or more, or a huge ``scale``) raise ``ValueError`` rather than
  being mistaken for masked ones.
* longdouble input is computed in float64 and returned as longdouble.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_finite, check_number, real_array_and_dtype

__all__ = ["attention", "flash_attention", "flash_attention_backward"]


def _array(x, name, min_ndim=2):
    a, dtype = real_array_and_dtype(x, name=name)
    if a.ndim < min_ndim:
        what = "(..., n, d)" if min_ndim == 2 else "(..., n)"
        raise ValueError(f"{name} must have at least {min_ndim} axes {what}; got shape "
                         f"{a.shape}")
    check_finite(a, name)
    return a, dtype


def _qkv(q, k, v, scale):
    """Validated ``(q, k, v, scale, batch, dtype)``; arrays in float64, not yet broadcast."""
    (q, tq), (k, tk), (v, tv) = _array(q, "q"), _array(k, "k"), _array(v, "v")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same last axis d (the dimension of a query "
                         f"and a key); got q {q.shape} and k {k.shape}")
    if q.shape[-1] == 0:
        raise ValueError(f"q and k must have d >= 1 entries per query and key; got q "
                         f"{q.shape}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of rows m (one value per key); "
                         f"got k {k.shape} and v {v.shape}")
    batch = _broadcast("q, k and v", q.shape[:-2], k.shape[:-2], v.shape[:-2])
    if scale is None:
        scale = 1.0 / np.sqrt(q.shape[-1])
    else:
        scale = check_number(scale, "scale")
    dtype = np.result_type(tq, tk, tv)
    return (q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), scale, batch,
            dtype)


def _broadcast(names, *shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"the leading (batch) axes of {names} must broadcast; got "
                         f"{', '.join(map(str, shapes))}") from None


def _causal(n, m, rows=slice(None), cols=slice(None)):
    """Boolean ``(rows, cols)`` tile of the causal mask (True: key ``j <= i``)."""
    i = np.arange(n)[rows]
    j = np.arange(m)[cols]
    return j[None, :] <= i[:, None]


def _scores(q, kT, scale):
    """``scale * q @ kT``, refusing scores that overflow (they would pass for masked ones)."""
    with np.errstate(over="ignore", invalid="ignore"):
        s = scale * (q @ kT)
    if not np.all(np.isfinite(s)):
        raise ValueError("the scores scale * q @ k^T overflow the float64 range; scale the "
                         "inputs down (attention depends on the scores only)")
    return s


def _check_flag(causal):
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal must be True or False, got {causal!r}")
    return bool(causal)


def attention(q, k, v, *, mask=None, causal=False, scale=None):
    r"""Scaled dot-product attention, :math:`\operatorname{softmax}(c\,\mathbf Q\mathbf K^\top)
    \mathbf V` with the whole score matrix formed: the reference.

    Parameters
    ----------
    q : array_like, shape (..., n, d)
        Queries.
    k : array_like, shape (..., m, d)
        Keys.
    v : array_like, shape (..., m, e)
        Values, one row per key.
    mask : array_like of bool, broadcastable to (..., n, m), optional
        True where query ``i`` may attend to key ``j``. A float mask (an additive bias) is
        refused: add a bias to the scores yourself if that is what you mean.
    causal : bool
        Query ``i`` attends only to keys ``j <= i`` (combined with ``mask`` by "and").
    scale : float, optional
        The factor :math:`c` of the scores; ``1/sqrt(d)`` by default.

    Returns
    -------
    out : ndarray, shape (..., n, e)
        One output per query; zeros for a query that may attend to no key.

    Raises
    ------
    TypeError
        Non-numeric input, a mask that is not boolean, a ``causal`` that is not a bool.
    ValueError
        Fewer than two axes, ``d`` of ``q`` and ``k`` different, ``k`` and ``v`` with
        different numbers of rows, batch axes or a mask that do not broadcast, a non-finite
        input or scale.

    Examples
    --------
    >>> import numpy as np
    >>> q = np.array([[1.0, 0.0]])
    >>> k = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> v = np.array([[10.0], [20.0]])
    >>> w = np.exp(1 / np.sqrt(2)); (10 * w + 20) / (w + 1)   # by hand
    np.float64(13.302...)
    >>> attention(q, k, v)
    array([[13.302...]])
    >>> attention(q, k, v, mask=np.array([[False, True]]))    # only the second key
    array([[20.]])
    >>> attention(q, k, v, mask=np.array([[False, False]]))   # nothing to attend to
    array([[0.]])
    """
    q, k, v, scale, batch, dtype = _qkv(q, k, v, scale)
    causal = _check_flag(causal)
    n, m = q.shape[-2], k.shape[-2]
    s = _scores(q, np.swapaxes(k, -1, -2), scale)
    allowed = None
    if mask is not None:
        allowed = _mask(mask, batch, n, m)
    if causal:
        c = _causal(n, m)
        allowed = c if allowed is None else allowed & c
    if allowed is not None:
        s = np.where(allowed, s, -np.inf)
    top = np.max(s, axis=-1, keepdims=True, initial=-np.inf)
    top = np.where(np.isfinite(top), top, 0.0)   # a fully masked row: exp(-inf) = 0 below
    p = np.exp(s - top)
    total = np.sum(p, axis=-1, keepdims=True)
    out = (p @ v) / np.where(total > 0, total, 1.0)
    return np.broadcast_to(out, batch + out.shape[-2:]).astype(dtype)


def _mask(mask, batch, n, m):
    if isinstance(mask, (str, bytes)):
        raise TypeError(f"mask must be a boolean array (True = attend), got {mask!r}")
    a = np.asarray(mask)
    if a.dtype != np.bool_:
        raise TypeError(f"mask must be boolean (True = attend), got dtype {a.dtype}; an "
                        "additive float mask is not accepted")
    target = batch + (n, m)
    try:
        fits = a.ndim <= len(target) and np.broadcast_shapes(a.shape, target) == target
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"mask of shape {a.shape} does not broadcast to the scores' shape "
                         f"(..., n, m) = {target}")
    return a


def _block(block):
    return check_number(block, "block", low=1, integer=True)


def _flat(a, batch):
    """``a`` broadcast to ``batch`` and reshaped to ``(B, rows, cols)``."""
    size = int(np.prod(batch, dtype=np.int64))
    return np.broadcast_to(a, batch + a.shape[-2:]).reshape((size,) + a.shape[-2:])


def flash_attention(q, k, v, *, causal=False, scale=None, block=128):
    r"""Tiled attention forward pass: ``(out, lse)`` without forming the score matrix.

    For each block of ``block`` queries, the keys and values are streamed through in blocks
    of ``block`` rows, with a running row maximum :math:`m`, normaliser :math:`\ell` and
    unnormalised output; the output is divided by :math:`\ell` once, at the end (the form of
    FlashAttention-2). With ``causal=True``, key blocks wholly above the diagonal are
    skipped. Conventions as in the module ``softmaxbook.scaled_attention``.

    Parameters
    ----------
    q, k, v, causal, scale
        As in :func:`attention`.
    block : int
        Rows of a query block and of a key block; at most ``block x block`` scores per batch
        entry exist at a time.

    Returns
    -------
    out : ndarray, shape (..., n, e)
        Equal to ``attention(q, k, v, causal=causal, scale=scale)`` to within rounding.
    lse : ndarray, shape (..., n)
        The log-sum-exp :math:`L_i` of each row of scores (``-inf`` for a query with no key),
        which the backward pass needs; float32 for float16 input, else the output's dtype.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = rng.normal(size=(5, 3)), rng.normal(size=(7, 3)), rng.normal(size=(7, 2))
    >>> out, lse = flash_attention(q, k, v, block=2)
    >>> bool(np.allclose(out, attention(q, k, v), rtol=1e-14, atol=1e-14))
    True
    >>> s = q @ k.T / np.sqrt(3)
    >>> bool(np.allclose(lse, np.log(np.exp(s).sum(axis=1)), rtol=1e-14))
    True
    """
    q, k, v, scale, batch, dtype = _qkv(q, k, v, scale)
    causal, block = _check_flag(causal), _block(block)
    n, m, e = q.shape[-2], k.shape[-2], v.shape[-1]
    qf, kf, vf = _flat(q, batch), _flat(k, batch), _flat(v, batch)
    out = np.zeros(qf.shape[:2] + (e,))
    lse = np.full(qf.shape[:2], -np.inf)
    for i0 in range(0, n, block):
        i1 = min(i0 + block, n)
        qi = qf[:, i0:i1]
        run_max = np.full(qi.shape[:2], -np.inf)
        run_sum = np.zeros(qi.shape[:2])
        acc = np.zeros(qi.shape[:2] + (e,))
        for j0 in range(0, min(m, i1) if causal else m, block):
            j1 = min(j0 + block, m)
            s = _scores(qi, np.swapaxes(kf[:, j0:j1], -1, -2), scale)
            if causal and j1 - 1 > i0:            # the tile crosses the diagonal
                s = np.where(_causal(n, m, slice(i0, i1), slice(j0, j1)), s, -np.inf)
            new_max = np.maximum(run_max, s.max(axis=-1))
            safe = np.where(np.isfinite(new_max), new_max, 0.0)
            alpha = np.exp(run_max - safe)         # rescales what was summed so far
            p = np.exp(s - safe[..., None])
            run_sum = alpha * run_sum + p.sum(axis=-1)
            acc = alpha[..., None] * acc + p @ vf[:, j0:j1]
            run_max = new_max
        seen = run_sum > 0
        out[:, i0:i1] = acc / np.where(seen, run_sum, 1.0)[..., None]
        with np.errstate(divide="ignore"):
            lse[:, i0:i1] = np.where(seen, run_max + np.log(run_sum), -np.inf)
    lse_dtype = np.float32 if dtype == np.float16 else dtype
    return (out.reshape(batch + (n, e)).astype(dtype),
            lse.reshape(batch + (n,)).astype(lse_dtype))


def flash_attention_backward(q, k, v, out, lse, d_out, *, causal=False, scale=None,
                             block=128):
    r"""Gradients ``(dq, dk, dv)`` of a loss through :func:`flash_attention`, tile by tile.

    Given the forward pass's ``out`` and ``lse`` and the gradient ``d_out`` of the loss with
    respect to ``out``, each tile of probabilities is recomputed as
    :math:`P_{ij} = \exp(S_{ij} - L_i)`, and

    .. math:: d\mathbf V \mathrel{+}= \mathbf P^\top d\mathbf O, \quad
              d\mathbf P = d\mathbf O\,\mathbf V^\top, \quad
              d\mathbf S = \mathbf P \circ (d\mathbf P - D), \quad
              d\mathbf Q \mathrel{+}= c\,d\mathbf S\,\mathbf K, \quad
              d\mathbf K \mathrel{+}= c\,d\mathbf S^\top \mathbf Q,

    with :math:`D_i = \langle d\mathbf O_i, \mathbf O_i\rangle` computed once. Key blocks
    are the outer loop, so each block of ``dk`` and ``dv`` is finished before the next.
    Gradients of inputs that were broadcast over batch axes are summed over those axes, so
    each gradient has the shape of its input.

    Parameters
    ----------
    q, k, v, causal, scale, block
        As in :func:`flash_attention` (use the same values).
    out : array_like, shape (..., n, e)
        The forward pass's output.
    lse : array_like, shape (..., n)
        The forward pass's log-sum-exp per query (``-inf`` allowed: a query with no key).
    d_out : array_like, shape (..., n, e)
        Gradient of the loss with respect to ``out``.

    Returns
    -------
    dq, dk, dv : ndarray
        Shapes of ``q``, ``k`` and ``v``; the dtype of the forward output.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> q, k, v = rng.normal(size=(4, 3)), rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    >>> g = rng.normal(size=(4, 2))                  # the loss is sum(g * out)
    >>> out, lse = flash_attention(q, k, v, block=2)
    >>> dq, dk, dv = flash_attention_backward(q, k, v, out, lse, g, block=2)
    >>> loss = lambda vv: np.sum(g * attention(q, k, vv))
    >>> h = 1e-6; e = np.zeros_like(v); e[2, 1] = h
    >>> fd = (loss(v + e) - loss(v - e)) / (2 * h)    # central difference
    >>> bool(np.isclose(dv[2, 1], fd, rtol=1e-7))
    True
    """
    q, k, v, scale, batch, dtype = _qkv(q, k, v, scale)
    causal, block = _check_flag(causal), _block(block)
    n, m, e = q.shape[-2], k.shape[-2], v.shape[-1]
    o, _ = _array(out, "out")
    do, _ = _array(d_out, "d_out")
    lse_a, _ = real_array_and_dtype(lse, name="lse")
    if lse_a.ndim < 1:
        raise ValueError(f"lse must have shape (..., n); got shape {lse_a.shape}")
    try:
        lse_fits = (lse_a.shape[-1] == n and np.broadcast_shapes(lse_a.shape, batch + (n,))
                    == batch + (n,))
    except ValueError:
        lse_fits = False
    if np.any(np.isnan(lse_a)) or np.any(lse_a == np.inf):
        raise ValueError("lse must be finite or -inf (a query with no key)")
    full = batch + (n, e)
    for name, a in (("out", o), ("d_out", do)):
        if a.shape[-2:] != (n, e):
            raise ValueError(f"{name} must have shape (..., n, e) = (..., {n}, {e}), as the "
                             f"forward output; got {a.shape}")
        try:
            if np.broadcast_shapes(a.shape, full) != full:
                raise ValueError
        except ValueError:
            raise ValueError(f"{name} of shape {a.shape} does not match the output's shape "
                             f"{full}") from None
    if not lse_fits:
        raise ValueError(f"lse must have shape (..., n) = {batch + (n,)}, one value per "
                         f"query; got {lse_a.shape}")
    qf, kf, vf = _flat(q, batch), _flat(k, batch), _flat(v, batch)
    of = _flat(o.astype(np.float64), batch)
    dof = _flat(do.astype(np.float64), batch)
    lsef = np.broadcast_to(lse_a.astype(np.float64), batch + (n,)).reshape(qf.shape[:2])
    delta = np.sum(dof * of, axis=-1)                     # D_i = <dO_i, O_i>
    live = np.isfinite(lsef)
    lse_safe = np.where(live, lsef, 0.0)
    dq = np.zeros(qf.shape)
    dk = np.zeros(kf.shape)
    dv = np.zeros(vf.shape)
    for j0 in range(0, m, block):
        j1 = min(j0 + block, m)
        kj, vj = kf[:, j0:j1], vf[:, j0:j1]
        dkj, dvj = np.zeros(kj.shape), np.zeros(vj.shape)
        for i0 in range((j0 // block) * block if causal else 0, n, block):
            i1 = min(i0 + block, n)
            s = _scores(qf[:, i0:i1], np.swapaxes(kj, -1, -2), scale)
            p = np.exp(s - lse_safe[:, i0:i1, None])
            keep = live[:, i0:i1, None]
            if causal and j1 - 1 > i0:
                keep = keep & _causal(n, m, slice(i0, i1), slice(j0, j1))
            p = np.where(keep, p, 0.0)
            doi = dof[:, i0:i1]
            dvj += np.swapaxes(p, -1, -2) @ doi
            dp = doi @ np.swapaxes(vj, -1, -2)
            ds = p * (dp - delta[:, i0:i1, None])
            dq[:, i0:i1] += scale * (ds @ kj)
            dkj += scale * (np.swapaxes(ds, -1, -2) @ qf[:, i0:i1])
        dk[:, j0:j1], dv[:, j0:j1] = dkj, dvj
    shapes = (batch + q.shape[-2:], batch + k.shape[-2:], batch + v.shape[-2:])
    grads = [g.reshape(s) for g, s in zip((dq, dk, dv), shapes)]
    return tuple(_sum_to(g, a.shape).astype(dtype) for g, a in zip(grads, (q, k, v)))


def _sum_to(g, shape):
    """Sum the gradient ``g`` over the axes along which an input of ``shape`` was broadcast."""
    extra = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(extra))) if extra else g
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g
