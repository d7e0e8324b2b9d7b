r"""Softmax over very many classes (chapter 13): hierarchical softmax and sampled softmax.

* :func:`huffman_tree` builds a binary tree over ``V`` classes from their counts, frequent
  classes near the root; :func:`hierarchical_softmax_log_prob` gives the exact, normalised
  log-probabilities of the model that walks down such a tree with one sigmoid per internal
  node (Morin & Bengio 2005; Mikolov et al. 2013).
* :func:`sampled_softmax_loss` estimates the cross-entropy of a full softmax from the true
  class and a sample of others, with the ``log Q`` correction of Jean et al. (2015);
  :func:`sample_classes` draws that sample.
"""

from __future__ import annotations

import heapq

import numpy as np

from ._validation import check_number, real_array_and_dtype

__all__ = ["huffman_tree", "hierarchical_softmax_log_prob", "sampled_softmax_loss",
           "sample_classes"]


def huffman_tree(counts):
    """A Huffman tree over the classes: ``(paths, signs)``, one row per class.

    The two least frequent subtrees are merged until one tree is left (ties broken by
    creation order, so the result is deterministic). Internal nodes are numbered
    ``0 .. V-2``, the root last (``V - 2``). Row ``w`` of ``paths`` lists the internal nodes
    from the root down to class ``w``'s leaf, padded with ``-1``; row ``w`` of ``signs``
    is ``+1`` where the path goes to the left child, ``-1`` to the right, ``0`` in the
    padding. The length of class ``w``'s code is ``(paths[w] >= 0).sum()``.

    Parameters
    ----------
    counts : array_like of non-negative numbers, shape (V,), V >= 2

    Returns
    -------
    paths : ndarray of int, shape (V, L)
    signs : ndarray of float, shape (V, L)
        ``L`` is the longest code. The padded arrays take ``V * L`` entries: for very skewed
        counts (many zeros) ``L`` can approach ``V``, and a sparse layout would be better.

    Examples
    --------
    >>> paths, signs = huffman_tree([5, 2, 1, 1])
    >>> (paths >= 0).sum(axis=1)                  # code lengths
    array([1, 2, 3, 3])
    >>> paths[0], signs[0]                        # the frequent class: one step from the root
    (array([ 2, -1, -1]), array([-1.,  0.,  0.]))
    """
    c, _ = real_array_and_dtype(counts, name="counts")
    if c.ndim != 1 or c.size < 2:
        raise ValueError(f"counts must be a 1-d array of at least 2 classes; got shape "
                         f"{c.shape}")
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError("counts must be finite and non-negative")
    V = c.size
    # nodes 0..V-1 are the leaves, V + k is internal node k (the k-th merge)
    parent = np.full(2 * V - 1, -1, dtype=np.intp)
    side = np.zeros(2 * V - 1)
    heap = [(float(c[w]), w) for w in range(V)]          # (count, node id): ties by id
    heapq.heapify(heap)
    for k in range(V - 1):
        ca, a = heapq.heappop(heap)
        cb, b = heapq.heappop(heap)
        node = V + k
        parent[a], side[a] = node, 1.0                   # the lighter subtree goes left
        parent[b], side[b] = node, -1.0
        heapq.heappush(heap, (ca + cb, node))
    depth = np.zeros(V, dtype=np.intp)                   # walk all leaves up at once
    cur = np.arange(V)
    while True:
        up = parent[cur] >= 0
        if not up.any():
            break
        depth[up] += 1
        cur = np.where(up, parent[cur], cur)
    L = int(depth.max())
    paths = np.full((V, L), -1, dtype=np.intp)
    signs = np.zeros((V, L))
    rows, cur, pos = np.arange(V), np.arange(V), depth - 1
    while rows.size:                                     # fill each path from its leaf end
        paths[rows, pos] = parent[cur] - V
        signs[rows, pos] = side[cur]
        cur, pos = parent[cur], pos - 1
        keep = pos >= 0
        rows, cur, pos = rows[keep], cur[keep], pos[keep]
    return paths, signs


def _log_sigmoid(x):
    """log(sigmoid(x)) without overflow or cancellation: -log1p(exp(-x)) split by sign."""
    return np.where(x >= 0, -np.log1p(np.exp(-np.abs(x))), x - np.log1p(np.exp(-np.abs(x))))


def hierarchical_softmax_log_prob(h, node_vectors, paths, signs):
    r"""Log-probabilities of classes under a hierarchical softmax.

    .. math:: \log p(w \mid \mathbf h) = \sum_{l} \log\sigma\bigl(b_{wl}\,
              \mathbf u_{n(w, l)}^\top \mathbf h\bigr),

    the sum over the internal nodes :math:`n(w, l)` on the path to class :math:`w`, with
    :math:`b_{wl} = \pm 1` the direction taken. Because :math:`\sigma(x) + \sigma(-x) = 1` at
    every node, the probabilities of all leaves sum to one: the model is normalised exactly,
    at a cost proportional to the path length instead of the number of classes.

    Parameters
    ----------
    h : array_like, shape (..., d)
        Context vectors.
    node_vectors : array_like, shape (n_nodes, d)
        One vector per internal node.
    paths, signs : array_like, shape (W, L)
        Paths and directions of the ``W`` classes wanted (rows of :func:`huffman_tree`'s
        output, or all of them), padded with ``-1`` and ``0``. They must come from one
        tree; that is not checked (rows from different trees give probabilities that need
        not sum to one).

    Returns
    -------
    ndarray, shape (..., W)
        ``log p(w | h)`` for each context and each of the ``W`` classes.

    Examples
    --------
    >>> paths, signs = huffman_tree([5, 2, 1, 1])
    >>> rng = np.random.default_rng(0)
    >>> logp = hierarchical_softmax_log_prob(rng.normal(size=3), rng.normal(size=(3, 3)),
    ...                                      paths, signs)
    >>> round(float(np.exp(logp).sum()), 12)
    1.0
    """
    hh, _ = real_array_and_dtype(h, name="h")
    u, _ = real_array_and_dtype(node_vectors, name="node_vectors")
    P = np.asarray(paths)
    S, _ = real_array_and_dtype(signs, name="signs")
    if hh.ndim < 1:
        raise ValueError("h must have at least one axis (d)")
    if u.ndim != 2 or u.shape[1] != hh.shape[-1]:
        raise ValueError(f"node_vectors must have shape (n_nodes, d) with d = {hh.shape[-1]} "
                         f"(the last axis of h); got {u.shape}")
    if P.dtype.kind not in "iu" or P.ndim != 2:
        raise TypeError(f"paths must be a 2-d integer array (W, L); got {P.dtype}, shape "
                        f"{P.shape}")
    if S.shape != P.shape:
        raise ValueError(f"signs must have the shape of paths {P.shape}; got {S.shape}")
    if np.any(P < -1):
        raise ValueError(f"paths hold {int(P.min())}; node indices are >= 0 and the only "
                         "padding allowed is -1")
    if np.any(P >= u.shape[0]):
        raise IndexError(f"paths refer to node {int(P.max())}, but node_vectors has only "
                         f"{u.shape[0]} rows")
    valid = P >= 0
    if np.any(valid & (np.abs(S) != 1)) or np.any(~valid & (S != 0)):
        raise ValueError("signs must be +1 or -1 along a path and 0 in its padding")
    scores = hh.astype(np.float64) @ u.astype(np.float64).T        # (..., n_nodes)
    gathered = np.where(valid, scores[..., np.where(valid, P, 0)], 0.0)   # (..., W, L)
    terms = np.where(valid, _log_sigmoid(np.where(valid, S, 1.0) * gathered), 0.0)
    out_dtype = np.result_type(hh.dtype, u.dtype)
    return terms.sum(axis=-1).astype(out_dtype)


def sampled_softmax_loss(logits_true, logits_sampled, log_q_true, log_q_sampled, *,
                         correct=True, reduction="mean"):
    r"""Sampled-softmax estimate of the cross-entropy of a full softmax.

    For each example, the true class's logit :math:`z_y` and the logits :math:`z_s` of ``m``
    classes drawn from a proposal :math:`Q` give

    .. math:: L = -\tilde z_y + \log\Bigl(e^{\tilde z_y} + \sum_{s} e^{\tilde z_s}\Bigr),
              \qquad \tilde z = z - \log Q \ \text{(if ``correct``)},

    the cross-entropy of a softmax over the true class and the sample, with the logits
    corrected by the log-probability of being drawn (Jean et al. 2015). Its *gradient* is the
    self-normalised importance-sampling estimate of the gradient of the full cross-entropy,
    consistent as ``m`` grows; its *value* is not an estimate of the cross-entropy (it differs
    from it by about ``log(m Q(y))``). Without the correction the gradient pushes down the
    classes the proposal draws often, and they are learned too small. Accidental hits (a
    sample equal to the true class) are left in, which keeps the gradient consistent;
    removing them (``logits_sampled = -inf`` there) needs a different correction.

    Parameters
    ----------
    logits_true : array_like, shape (N,)
    logits_sampled : array_like, shape (N, m)
        The sampled classes' logits for each example (for a sample shared by the batch,
        broadcast it: ``np.broadcast_to(z_s, (N, m))``); ``-inf`` allowed.
    log_q_true : array_like, shape (N,)
    log_q_sampled : array_like, shape (N, m)
    correct : bool
        Subtract ``log Q`` (the default, and what makes the estimate consistent).
    reduction : {"mean", "sum", "none"}

    Examples
    --------
    >>> # a uniform proposal and every other class "sampled" once: the corrections are one
    >>> # common shift, and the loss is the full cross-entropy (an exact case, not sampling)
    >>> z = np.array([[2.0, 0.5, -1.0, 0.3]]); y = 0
    >>> others = np.delete(z, y, axis=1)
    >>> lq = np.log(1 / 4)
    >>> full = np.log(np.exp(z).sum()) - z[0, y]
    >>> got = sampled_softmax_loss(z[:, y], others, np.full(1, lq), np.full((1, 3), lq))
    >>> bool(np.isclose(got, full))
    True
    """
    zt, _ = real_array_and_dtype(logits_true, name="logits_true")
    zs, _ = real_array_and_dtype(logits_sampled, name="logits_sampled")
    qt, _ = real_array_and_dtype(log_q_true, name="log_q_true")
    qs, _ = real_array_and_dtype(log_q_sampled, name="log_q_sampled")
    if not isinstance(correct, (bool, np.bool_)):
        raise TypeError(f"correct must be True or False, got {correct!r}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if zt.ndim != 1:
        raise ValueError(f"logits_true must have shape (N,); got {zt.shape}")
    if zs.ndim != 2 or zs.shape[0] != zt.size:
        raise ValueError(f"logits_sampled must have shape (N, m) with N = {zt.size} (one row "
                         f"per example; broadcast a shared sample); got {zs.shape}")
    if qt.shape != zt.shape:
        raise ValueError(f"log_q_true must have the shape of logits_true {zt.shape}; got "
                         f"{qt.shape}")
    if qs.shape != zs.shape:
        raise ValueError(f"log_q_sampled must have the shape of logits_sampled {zs.shape}; "
                         f"got {qs.shape}")
    if not (np.all(np.isfinite(zt)) and np.all(np.isfinite(qt))):
        raise ValueError("logits_true and log_q_true must be finite")
    if np.any(np.isnan(zs)) or np.any(zs == np.inf):
        raise ValueError("logits_sampled must be finite or -inf (a class left out)")
    if np.any(~np.isfinite(qs) & (zs > -np.inf)):
        raise ValueError("log_q_sampled must be finite where logits_sampled is finite")
    out_dtype = np.result_type(zt.dtype, zs.dtype)
    t = zt.astype(np.float64) - (qt if correct else 0.0)
    s = np.where(zs > -np.inf, zs.astype(np.float64) - (np.where(np.isfinite(qs), qs, 0.0)
                                                       if correct else 0.0), -np.inf)
    allz = np.concatenate([t[:, None], s], axis=1)
    top = allz.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(allz - top).sum(axis=1))
    loss = (lse - t).astype(out_dtype)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean() if loss.size else np.asarray(np.nan, dtype=out_dtype)[()]


def sample_classes(q, size, *, rng):
    """Draw ``size`` classes with replacement from the proposal ``q``.

    Returns ``(ids, log_q)``: the classes and the log-probability of each under ``q``, the
    numbers :func:`sampled_softmax_loss` subtracts.

    Examples
    --------
    >>> ids, lq = sample_classes([0.5, 0.25, 0.25], 4, rng=np.random.default_rng(0))
    >>> ids.shape, bool(np.allclose(np.exp(lq), np.array([0.5, 0.25, 0.25])[ids]))
    ((4,), True)
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    p, _ = real_array_and_dtype(q, name="q")
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"q must be a non-empty 1-d array of probabilities; got {p.shape}")
    total = np.sum(p, dtype=np.float64)
    tol = max(1e-9, 1e3 * float(np.finfo(p.dtype).eps)) if p.dtype.kind == "f" else 1e-9
    if not np.all(np.isfinite(p)) or np.any(p < 0) or abs(total - 1) > tol:
        raise ValueError("q must hold non-negative probabilities that sum to 1")
    size = check_number(size, "size", low=1, integer=True)
    p = p.astype(np.float64) / total
    ids = rng.choice(p.size, size=size, p=p)
    with np.errstate(divide="ignore"):
        return ids, np.log(p[ids])
