"""The Jacobian of softmax, and its product with a vector without forming it.

Chapter 3 derives ``J_ij = ds_i/dz_j = s_i (delta_ij - s_j)``, that is
``J = diag(s) - s s^T``: symmetric, positive semidefinite, with ``J 1 = 0``.
"""

from __future__ import annotations

import numpy as np

from ._validation import real_array_and_dtype
from .core import _QUIET, _exp_parts

__all__ = ["softmax_jacobian", "softmax_jvp"]


def _logits(z, name="z"):
    """``(a, dtype)``: the logits as a C-contiguous native array, and the result's dtype.

    C order makes every reduction over the classes a pairwise sum along a
    contiguous row, so that a row's result has the same bits whatever the
    caller's layout and whatever the other rows.
    """
    a, dtype = real_array_and_dtype(z, name=name)
    if a.ndim == 0:
        raise np.exceptions.AxisError(
            f"the classes are on the last axis, but {name} is 0-d ({a!r}); "
            "pass at least one logit"
        )
    return np.ascontiguousarray(a), dtype


def _probs_and_complements(a):
    """``s = softmax(a)`` and ``1 - s`` along the last axis, in working precision.

    ``1 - s_i`` is computed as ``sum_{j != i} s_j`` for one maximal entry (the
    only one that can exceed 1/2), so it keeps its relative accuracy when
    ``s_i`` is close to 1; for every other entry ``1 - s_i >= 1/2`` and the
    subtraction is exact to rounding.
    """
    _, _, e, _ = _exp_parts(a, -1)
    total = np.sum(e, axis=-1, keepdims=True)
    s = e / total
    comp = 1 - s
    top = np.argmax(e, axis=-1)[..., None]
    rest = e.copy()
    np.put_along_axis(rest, top, 0, axis=-1)
    np.put_along_axis(comp, top, np.sum(rest, axis=-1, keepdims=True) / total, axis=-1)
    return s, comp


def softmax_jacobian(z):
    r"""The Jacobian matrix of softmax for every row of logits.

    .. math:: J_{ij} = \frac{\partial s_i}{\partial z_j} = s_i(\delta_{ij} - s_j),
              \qquad \mathbf J = \operatorname{diag}(\mathbf s) - \mathbf s \mathbf s^\top

    Parameters
    ----------
    z : array_like of real numbers, shape (..., K)
        Logits with the classes on the last axis (dtype rules as in
        :func:`softmaxbook.softmax`).

    Returns
    -------
    numpy.ndarray, shape (..., K, K)
        ``J[..., i, j] = ds_i/dz_j`` in the dtype of ``z``; symmetric.

    Raises
    ------
    TypeError
        For non-real input (strings, objects, complex, ragged lists).
    numpy.exceptions.AxisError
        If ``z`` is 0-d.

    Notes
    -----
    Forming ``J`` costs ``K**2`` memory per row; to multiply ``J`` by a vector
    use :func:`softmax_jvp`, which needs ``O(K)``. Accuracy: every entry has a
    small relative error (a few eps), the diagonal included: ``s_i (1 - s_i)``
    uses ``1 - s_i`` computed as the sum of the other probabilities when
    ``s_i`` is the largest, instead of subtracting from 1 a number that may
    have rounded to 1. Non-finite logits give the NaN pattern of
    :func:`softmaxbook.softmax`.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxbook import softmax_jacobian
    >>> softmax_jacobian([0.0, 0.0])
    array([[ 0.25, -0.25],
           [-0.25,  0.25]])
    >>> J = softmax_jacobian(np.zeros((5, 3)))
    >>> J.shape, np.allclose(J.sum(axis=-1), 0)
    ((5, 3, 3), True)
    >>> print(softmax_jacobian([40.0, 0.0])[0, 0])   # s(1 - s) with s = 1 - 4.2e-18
    4.248354255291589e-18
    """
    a, dtype = _logits(z)
    if a.shape[-1] == 0:
        return np.empty(a.shape + (0,), dtype=dtype)
    with np.errstate(**_QUIET):
        s, comp = _probs_and_complements(a)
        J = -s[..., :, None] * s[..., None, :]
        idx = np.arange(a.shape[-1])
        J[..., idx, idx] = s * comp
        return J.astype(dtype, copy=False)


def softmax_jvp(z, v):
    r"""The product of the softmax Jacobian with a vector, in ``O(K)``.

    .. math:: \mathbf J \mathbf v = \mathbf s \odot (\mathbf v - \langle \mathbf s, \mathbf v \rangle \mathbf 1)

    Because ``J`` is symmetric this is also the vector-Jacobian product
    ``v^T J`` used by backpropagation. It is evaluated as
    ``s_i (v_i - v_t + D)`` with ``t`` the most probable class and
    ``D = sum_{j != t} s_j (v_t - v_j)`` (equal to ``v_t - <s, v>``), so no
    entry cancels against a rounded ``<s, v>``: each keeps its accuracy
    relative to ``s_i (|v_i - v_t| + D)``, also at a dominant class.

    Parameters
    ----------
    z : array_like of real numbers, shape (..., K)
        Logits, classes on the last axis.
    v : array_like of real numbers
        Vectors of length ``K``, broadcastable against ``z``.

    Returns
    -------
    numpy.ndarray
        The broadcast shape of ``z`` and ``v``, in their common result dtype.

    Raises
    ------
    TypeError
        For non-real ``z`` or ``v``.
    ValueError
        If the last axes of ``z`` and ``v`` differ or they do not broadcast.
    numpy.exceptions.AxisError
        If ``z`` is 0-d.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxbook import softmax_jacobian, softmax_jvp
    >>> z, v = np.array([1.0, 2.0, 3.0]), np.array([1.0, -1.0, 0.5])
    >>> np.allclose(softmax_jvp(z, v), softmax_jacobian(z) @ v)
    True
    >>> print(softmax_jvp(z, np.ones(3)))   # J 1 = 0: shifting every logit changes nothing
    [0. 0. 0.]
    """
    a, z_dtype = _logits(z)
    b, v_dtype = real_array_and_dtype(v, name="v")
    b = np.ascontiguousarray(b)
    if b.ndim == 0 or b.shape[-1] != a.shape[-1]:
        raise ValueError(
            f"v must hold vectors of length K = {a.shape[-1]} on its last axis, got shape {b.shape}"
        )
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"z of shape {a.shape} and v of shape {b.shape} do not broadcast") from None
    dtype = z_dtype if z_dtype == v_dtype else np.result_type(a.dtype, b.dtype)
    if a.shape[-1] == 0:
        return np.empty(shape, dtype=dtype)
    with np.errstate(**_QUIET):
        s, _ = _probs_and_complements(a)
        s = np.broadcast_to(s, shape)
        vw = np.broadcast_to(b.astype(s.dtype), shape)
        # <s, v> = v_t - D with t the largest probability and
        # D = sum_{j != t} s_j (v_t - v_j): the difference v_i - <s, v> is
        # then formed without cancelling against a rounded <s, v>, so the
        # entry of a dominant class keeps its relative accuracy.
        t = np.argmax(s, axis=-1)[..., None]
        v_t = np.take_along_axis(vw, t, axis=-1)
        gap = v_t - vw
        d = np.sum(s * gap, axis=-1, keepdims=True)
        out = s * (d - gap)
        return out.astype(dtype, copy=False)
