"""The softmax cross-entropy loss and its gradient, computed from the logits.

Chapter 4 derives the gradient: for one example with logits ``z`` and label
``c``, the loss is ``C = -log softmax(z)_c = LSE(z) - z_c`` and
``dC/dz = softmax(z) - onehot(c)``, the famous ``delta = a - y``.

Both functions work from the logits and never form ``log(softmax(z))``: that
rounds a probability near 1 to exactly 1 and loses every small loss, and it
returns ``-inf`` once a probability underflows to 0.
"""

from __future__ import annotations

import numpy as np

from ._validation import (as_real_array, check_labels, real_array_and_dtype,
                          sum_to_one_tolerance)
from .core import _QUIET, _exp_parts, _log_softmax_work
from .jacobian import _probs_and_complements

__all__ = ["cross_entropy", "cross_entropy_grad"]

_REDUCTIONS = ("mean", "sum", "none")


def _prepare(logits, labels, reduction, allowed=_REDUCTIONS):
    """``(a, y, soft, dtype)``: logits, labels (``(..., 1)`` indices, or targets), result dtype."""
    a, dtype = real_array_and_dtype(logits, name="logits")
    if a.ndim == 0:
        raise ValueError("logits must have at least one axis (the classes, last); got a 0-d array")
    a = np.ascontiguousarray(a)       # row sums in C order: the same bits for any layout
    if not isinstance(reduction, str) or reduction not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {reduction!r}")
    t = _soft_targets(labels, a.shape)
    if t is not None:
        return a, t, True, dtype
    y = check_labels(labels, a.shape)
    return a, y[..., None], False, dtype


def _soft_targets(labels, shape):
    """Probability targets (floating, the logits' shape), validated; else ``None``."""
    if isinstance(labels, (str, bytes)):
        return None
    try:
        t = np.asarray(labels)
    except ValueError:
        return None
    if t.dtype.kind != "f" or t.shape != tuple(shape):
        return None
    t = np.ascontiguousarray(as_real_array(t, name="labels"))
    if shape[-1] == 0 and t.ndim and int(np.prod(shape[:-1])) > 0:
        raise ValueError("probability targets with no classes (K = 0) cannot sum to 1")
    if t.size == 0:
        return t
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("probability targets (floating labels of the logits' shape) must be "
                         "finite and non-negative")
    K = shape[-1]
    tol = sum_to_one_tolerance(t.dtype, K)
    sums = np.sum(t, axis=-1, dtype=np.float64)
    if np.any(np.abs(sums - 1) > tol):
        pos = tuple(int(i) for i in np.argwhere(np.abs(sums - 1) > tol)[0])
        raise ValueError(f"probability targets must sum to 1 over the classes; the row at "
                         f"position {pos} sums to {float(sums[pos])!r}")
    return t


def cross_entropy(logits, labels, reduction="mean"):
    r"""Softmax cross-entropy (negative log-likelihood) of integer labels or probability targets.

    .. math:: C = \frac1N \sum_{n=1}^N \Bigl(-\log \operatorname{softmax}(\mathbf z_n)_{c_n}\Bigr)
              = \frac1N \sum_{n=1}^N \bigl(\operatorname{LSE}(\mathbf z_n) - z_{n c_n}\bigr)

    Parameters
    ----------
    logits : array_like of real numbers, shape (..., K)
        Unnormalised scores, classes on the last axis (dtype rules as in
        :func:`softmaxbook.softmax`).
    labels : array_like of int, shape (...), or of float, shape (..., K)
        The class index ``c_n`` in ``0 .. K-1`` of every row of ``logits``;
        or *probability targets* ``y_n`` (soft labels: floating, the logits'
        shape, non-negative, each row summing to 1), for which the loss is
        ``-sum_k y_nk log softmax(z_n)_k`` (with ``0 log 0 = 0``).
    reduction : {"mean", "sum", "none"}, optional
        Average over the rows (default), add them up, or return one loss per row.

    Returns
    -------
    numpy scalar or numpy.ndarray
        In the dtype of ``logits``; shape ``labels.shape`` for ``"none"``.

    Raises
    ------
    TypeError
        For non-real logits, or labels that are neither integers nor
        probability targets of the logits' shape (booleans, strings, floats
        of another shape).
    ValueError
        If the shape of ``labels`` is not ``logits.shape[:-1]``, if ``reduction``
        is unknown, if ``"mean"`` is asked of zero rows, or if probability
        targets are negative, not finite, or do not sum to 1.
    IndexError
        For a label outside ``0 .. K-1``, negative labels included; the message
        names the label and its position.

    Notes
    -----
    Each row's loss is ``-log_softmax(z)_c`` in working precision (see
    :mod:`softmaxbook.core`), so a confident correct prediction keeps its tiny
    loss: for ``z = [40, 0]`` and ``c = 0`` the loss is ``log1p(e**-40)``,
    about ``4.25e-18``, where ``LSE(z) - z_c`` in float64 gives 0. The sum over
    rows adds numbers of one sign, so it is well conditioned: the result is
    within a few eps of the exact value. Special values follow
    :func:`softmaxbook.log_softmax`: a NaN logit in a row makes its loss NaN, a
    ``-inf`` logit at the label makes it ``+inf``.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxbook import cross_entropy
    >>> z = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.0]])
    >>> print(round(float(cross_entropy(z, [0, 1])), 6))
    0.306882
    >>> cross_entropy(z, [0, 1], reduction="none").round(4)
    array([0.417 , 0.1967])
    >>> float(cross_entropy([40.0, 0.0], 0))
    4.248354255291589e-18
    >>> print(round(float(cross_entropy(z, [[0.9, 0.1, 0.0], [0.0, 1.0, 0.0]])), 6))
    0.356882
    """
    a, y, soft, dtype = _prepare(logits, labels, reduction)
    n = int(np.prod(a.shape[:-1]))
    if reduction == "mean" and n == 0:
        raise ValueError("the mean cross-entropy of zero examples is undefined; "
                         "use reduction='sum' or 'none'")
    if n == 0 or a.shape[-1] == 0:
        zero = np.zeros(a.shape[:-1], dtype=dtype)
        return zero if reduction == "none" else zero.sum(dtype=dtype)
    with np.errstate(**_QUIET):
        ls = _log_softmax_work(a, -1)
        if soft:
            # -sum_k y_k log s_k, with 0 * log 0 = 0 (a class the target rules out)
            terms = np.where(y > 0, -y.astype(ls.dtype) * ls, 0)
            losses = np.sum(terms, axis=-1)
        else:
            losses = -np.take_along_axis(ls, y, axis=-1)[..., 0]
        if reduction == "none":
            return losses.astype(dtype, copy=False)
        total = np.sum(losses)
        if reduction == "mean":
            total = total / losses.size
        return total.astype(dtype)


def cross_entropy_grad(logits, labels, reduction="mean"):
    r"""Gradient of :func:`cross_entropy` with respect to the logits.

    .. math:: \frac{\partial C}{\partial z_{nj}} = \frac{1}{N}\bigl(\operatorname{softmax}(\mathbf z_n)_j - y_{nj}\bigr),
              \qquad y_{nj} = [j = c_n]

    For probability targets ``y`` the same formula holds (chapter 4: it needs
    only ``sum_j y_nj = 1``); it is computed as ``softmax(z_n) * sum(y_n) - y_n``,
    the exact gradient of the loss for the targets as given.

    Parameters
    ----------
    logits : array_like of real numbers, shape (..., K)
        As for :func:`cross_entropy`.
    labels : array_like of int, shape (...), or of float, shape (..., K)
        Class indices or probability targets, as for :func:`cross_entropy`.
    reduction : {"mean", "sum"}, optional
        The reduction of the loss being differentiated: ``"mean"`` divides by
        the number of rows ``N``, ``"sum"`` does not.

    Returns
    -------
    numpy.ndarray
        Shape and dtype of ``logits``. Each row sums to zero.

    Raises
    ------
    TypeError, ValueError, IndexError
        As for :func:`cross_entropy`.

    Notes
    -----
    The entry at the label, ``s_c - 1``, is computed as ``-sum_{j != c} s_j``
    from the exponentials, not by subtracting 1 from a rounded ``s_c``: when the
    model is confident and right, ``s_c`` rounds to 1 and ``s_c - 1`` would be
    exactly 0, while the true gradient is small but not zero. Every entry is
    within a few eps of the exact gradient.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxbook import cross_entropy_grad, softmax
    >>> z = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.0]])
    >>> g = cross_entropy_grad(z, [0, 1])
    >>> np.allclose(g, (softmax(z) - np.eye(3)[[0, 1]]) / 2)
    True
    >>> bool(np.abs(g.sum(axis=-1)).max() < 1e-16)
    True
    >>> print(cross_entropy_grad([40.0, 0.0], 0))
    [-4.24835426e-18  4.24835426e-18]
    """
    a, y, soft, dtype = _prepare(logits, labels, reduction, allowed=("mean", "sum"))
    if a.size == 0:
        return np.zeros(a.shape, dtype=dtype)
    n = int(np.prod(a.shape[:-1]))
    with np.errstate(**_QUIET):
        if soft:
            # s * sum(y) - y, written as s * (sum(y) - y) - y * (1 - s) with 1 - s
            # computed from the other classes' terms: exact in the limit s -> 1
            s_, comp = _probs_and_complements(a)
            yw = y.astype(s_.dtype)
            g = s_ * (np.sum(yw, axis=-1, keepdims=True) - yw) - yw * comp
            if reduction == "mean":
                g /= n
            return g.astype(dtype, copy=False)
        _, _, e, _ = _exp_parts(a, -1)
        total = np.sum(e, axis=-1, keepdims=True)
        g = e / total
        rest = e                                   # e is not needed any more
        np.put_along_axis(rest, y, 0, axis=-1)
        np.put_along_axis(g, y, -np.sum(rest, axis=-1, keepdims=True) / total, axis=-1)
        if reduction == "mean":
            g /= n
        return g.astype(dtype, copy=False)
