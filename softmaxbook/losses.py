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

from ._validation import as_real_array, check_labels
from .core import _QUIET, _exp_parts, _log_softmax_work

__all__ = ["cross_entropy", "cross_entropy_grad"]

_REDUCTIONS = ("mean", "sum", "none")


def _prepare(logits, labels, reduction, allowed=_REDUCTIONS):
    a = as_real_array(logits, name="logits")
    if a.ndim == 0:
        raise ValueError("logits must have at least one axis (the classes, last); got a 0-d array")
    if reduction not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {reduction!r}")
    y = check_labels(labels, a.shape)
    return a, y[..., None]


def cross_entropy(logits, labels, reduction="mean"):
    r"""Softmax cross-entropy (negative log-likelihood) of integer labels.

    .. math:: C = \frac1N \sum_{n=1}^N \Bigl(-\log \operatorname{softmax}(\mathbf z_n)_{c_n}\Bigr)
              = \frac1N \sum_{n=1}^N \bigl(\operatorname{LSE}(\mathbf z_n) - z_{n c_n}\bigr)

    Parameters
    ----------
    logits : array_like of real numbers, shape (..., K)
        Unnormalised scores, classes on the last axis (dtype rules as in
        :func:`softmaxbook.softmax`).
    labels : array_like of int, shape (...)
        The class index ``c_n`` in ``0 .. K-1`` of every row of ``logits``.
    reduction : {"mean", "sum", "none"}, optional
        Average over the rows (default), add them up, or return one loss per row.

    Returns
    -------
    numpy scalar or numpy.ndarray
        In the dtype of ``logits``; shape ``labels.shape`` for ``"none"``.

    Raises
    ------
    TypeError
        For non-real logits or non-integer labels (floats, booleans, strings).
    ValueError
        If the shape of ``labels`` is not ``logits.shape[:-1]``, if ``reduction``
        is unknown, or if ``"mean"`` is asked of zero rows.
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
    """
    a, y = _prepare(logits, labels, reduction)
    if reduction == "mean" and y.size == 0:
        raise ValueError("the mean cross-entropy of zero examples is undefined; "
                         "use reduction='sum' or 'none'")
    if y.size == 0:
        zero = np.zeros(y.shape[:-1], dtype=a.dtype)
        return zero if reduction == "none" else zero.sum(dtype=a.dtype)
    with np.errstate(**_QUIET):
        losses = -np.take_along_axis(_log_softmax_work(a, -1), y, axis=-1)[..., 0]
        if reduction == "none":
            return losses.astype(a.dtype, copy=False)
        total = np.sum(losses)
        if reduction == "mean":
            total = total / losses.size
        return total.astype(a.dtype)


def cross_entropy_grad(logits, labels, reduction="mean"):
    r"""Gradient of :func:`cross_entropy` with respect to the logits.

    .. math:: \frac{\partial C}{\partial z_{nj}} = \frac{1}{N}\bigl(\operatorname{softmax}(\mathbf z_n)_j - y_{nj}\bigr),
              \qquad y_{nj} = [j = c_n]

    Parameters
    ----------
    logits : array_like of real numbers, shape (..., K)
        As for :func:`cross_entropy`.
    labels : array_like of int, shape (...)
        As for :func:`cross_entropy`.
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
    a, y = _prepare(logits, labels, reduction, allowed=("mean", "sum"))
    if a.size == 0:
        return np.zeros(a.shape, dtype=a.dtype)
    with np.errstate(**_QUIET):
        _, _, e, _ = _exp_parts(a, -1)
        total = np.sum(e, axis=-1, keepdims=True)
        g = e / total
        rest = e.copy()
        np.put_along_axis(rest, y, 0, axis=-1)
        np.put_along_axis(g, y, -np.sum(rest, axis=-1, keepdims=True) / total, axis=-1)
        if reduction == "mean":
            g /= y.size
        return g.astype(a.dtype, copy=False)
