"""Ranking metrics computed from scores: the AUC as a Mann-Whitney statistic.

Chapter 8 uses it to test whether softmax outputs change ROC curves.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_real_array

__all__ = ["auc_mann_whitney"]


def auc_mann_whitney(scores, positive):
    r"""Area under the ROC curve, with ties counted as one half.

    .. math:: \mathrm{AUC} = P(S^+ > S^-) + \tfrac12 P(S^+ = S^-)

    over all pairs of a positive and a negative example. It equals the
    trapezoidal area under the ROC curve, and it depends only on the order of
    the scores, so any strictly increasing transformation leaves it unchanged.
    Computed from average ranks in ``O(n log n)``.

    Parameters
    ----------
    scores : array_like of real numbers, shape (n,)
        Higher means "more likely positive". NaN is not allowed.
    positive : array_like of bool or 0/1, shape (n,)
        True for positive examples.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        For mismatched shapes, NaN scores, labels other than 0/1, or a class
        with no examples.
    TypeError
        For non-numeric scores.

    Examples
    --------
    >>> auc_mann_whitney([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    >>> auc_mann_whitney([1.0, 1.0, 1.0, 1.0], [0, 0, 1, 1])   # all tied
    0.5
    """
    from scipy.stats import rankdata

    s = as_real_array(scores, name="scores")
    raw = np.asarray(scores)
    if raw.dtype.kind in "iu":
        s = raw   # rank integers as they are: float64 would tie 2**53 and 2**53 + 1
    pos = np.asarray(positive)
    if s.ndim != 1 or pos.shape != s.shape:
        raise ValueError(f"scores and positive must be 1-d of the same length, got {s.shape} and {pos.shape}")
    if s.size == 0:
        raise ValueError("there are no examples (scores and positive are empty)")
    if np.any(np.isnan(s)):
        raise ValueError("scores contain NaN, which has no place in a ranking")
    if pos.dtype.kind not in "biuf" or not np.all((pos == 0) | (pos == 1)):
        raise ValueError("positive must hold booleans or 0/1")
    pos = pos.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"need both classes, got {n_pos} positives and {n_neg} negatives")
    ranks = rankdata(s if s.dtype.kind in "iu" or s.dtype == np.longdouble
                     else s.astype(np.float64))
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
