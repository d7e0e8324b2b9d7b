"""Calibration of predicted probabilities: reliability bins, ECE, temperature scaling.

Chapter 7 derives these; definitions follow Guo et al. (2017).
"""

from __future__ import annotations

import numpy as np

from ._validation import (as_real_array, check_finite, check_labels, check_number,
                          sum_to_one_tolerance)
from .losses import cross_entropy

__all__ = ["reliability_bins", "expected_calibration_error", "fit_temperature"]

#: More bins than this would only hold empty bins (and their arrays would not fit in memory).
_MAX_BINS = 10 ** 6


def _probs_and_labels(probs, labels):
    p = as_real_array(probs, name="probs")
    if p.ndim != 2:
        raise ValueError(f"probs must have shape (n, K), got {p.shape}")
    if p.size and (np.any(~np.isfinite(p)) or p.min() < 0 or p.max() > 1):
        raise ValueError("probs must be finite probabilities in [0, 1]")
    # Rows of a float16 or float32 softmax sum to 1 only to within their rounding.
    tol = sum_to_one_tolerance(p.dtype, p.shape[1])
    if p.size and not np.all(np.abs(p.sum(axis=1, dtype=np.float64) - 1) <= tol):
        raise ValueError("each row of probs must sum to 1 (pass softmax outputs, not logits)")
    if p.shape[1] == 0:
        raise ValueError("probs have no classes (shape (n, 0))")
    y = check_labels(labels, p.shape, logits_name="probs")
    if len(y) == 0:
        raise ValueError("there are no examples")
    return p, y


def reliability_bins(probs, labels, n_bins=15, strategy="uniform"):
    """Group predictions by confidence and compare confidence with accuracy in each group.

    The confidence of a prediction is its largest probability. With
    ``strategy="uniform"`` the bins split ``[0, 1]`` into ``n_bins`` equal
    intervals ``(lo, hi]`` (as in the ECE of Guo et al.); with ``"quantile"``
    they hold (nearly) equal numbers of predictions, which gives steadier
    diagrams when most predictions are confident.

    Parameters
    ----------
    probs : array_like, shape (n, K)
        Predicted distributions (rows sum to one).
    labels : array_like of int, shape (n,)
        True classes.
    n_bins : int, optional
        Number of confidence bins.
    strategy : {"uniform", "quantile"}, optional
        Equal-width bins, or bins with equal numbers of predictions.

    Returns
    -------
    dict
        ``edges`` (n_bins + 1,), and per bin ``count``, ``confidence`` (mean
        confidence) and ``accuracy`` (fraction correct); NaN for empty bins.

    Raises
    ------
    ValueError
        If ``probs`` is not a batch of distributions, ``n_bins < 1``, or
        ``strategy`` is unknown.
    TypeError, IndexError
        For bad labels, as in :func:`softmaxbook.cross_entropy`.

    Examples
    --------
    >>> import numpy as np
    >>> bins = reliability_bins(np.array([[0.9, 0.1], [0.6, 0.4]]), [0, 1], n_bins=2)
    >>> bins["count"].tolist(), bins["accuracy"].tolist()
    ([0, 2], [nan, 0.5])
    """
    p, y = _probs_and_labels(probs, labels)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if n_bins > _MAX_BINS:
        raise ValueError(f"n_bins must be at most {_MAX_BINS}, got {n_bins!r}")
    confidence = p.max(axis=1).astype(np.float64)
    correct = p.argmax(axis=1) == y
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        inner = np.quantile(confidence, np.linspace(0, 1, n_bins + 1)[1:-1])
        edges = np.concatenate([[0.0], inner, [1.0]])
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(which, weights=confidence, minlength=n_bins) / count
        acc = np.bincount(which, weights=correct, minlength=n_bins) / count
    return {"edges": edges, "count": count, "confidence": conf, "accuracy": acc}


def expected_calibration_error(probs, labels, n_bins=15):
    r"""Expected calibration error: the count-weighted mean gap between confidence and accuracy.

    .. math:: \mathrm{ECE} = \sum_b \frac{n_b}{n}\,\bigl|\mathrm{acc}_b - \mathrm{conf}_b\bigr|

    Parameters and errors as in :func:`reliability_bins`.

    Examples
    --------
    >>> import numpy as np
    >>> float(expected_calibration_error(np.array([[0.9, 0.1], [0.6, 0.4]]), [0, 1], n_bins=2))
    0.25
    """
    bins = reliability_bins(probs, labels, n_bins)
    filled = bins["count"] > 0
    weights = bins["count"][filled] / bins["count"].sum()
    return float(np.sum(weights * np.abs(bins["accuracy"][filled] - bins["confidence"][filled])))


def fit_temperature(logits, labels, bounds=(1e-2, 1e2)):
    """The temperature ``T`` that minimises the mean NLL of ``softmax(logits / T)``.

    The NLL is minimised over ``log T`` with a bounded scalar search; fit it on
    held-out (validation) data, never on the training set.

    Parameters
    ----------
    logits : array_like, shape (n, K)
        Logits of a trained model.
    labels : array_like of int, shape (n,)
        True classes.
    bounds : (float, float), optional
        Range searched for ``T``.

    Returns
    -------
    float
        The fitted temperature.

    Raises
    ------
    ValueError
        For bad bounds, logits that are not 2-d or not finite, or no examples.
    TypeError, IndexError
        For bad labels, as in :func:`softmaxbook.cross_entropy`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(2000, 3))
    >>> y = np.array([rng.choice(3, p=np.exp(r) / np.exp(r).sum()) for r in z])
    >>> abs(fit_temperature(3.0 * z, y) - 3.0) < 0.3   # logits 3x too large: T near 3
    True
    """
    from scipy.optimize import minimize_scalar

    z = as_real_array(logits, name="logits")
    if z.ndim != 2:
        raise ValueError(f"logits must have shape (n, K), got {z.shape}")
    check_finite(z, "logits")
    y = check_labels(labels, z.shape)
    if len(y) == 0:
        raise ValueError("there are no examples to fit a temperature to")
    try:
        lo, hi = bounds
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be a pair (low, high), got {bounds!r}") from None
    lo = check_number(lo, "bounds[0]", low=0, strict=True)
    hi = check_number(hi, "bounds[1]", low=0, strict=True)
    if not lo < hi:
        raise ValueError(f"bounds must satisfy 0 < low < high < inf, got {bounds!r}")
    res = minimize_scalar(lambda log_t: float(cross_entropy(z / np.exp(log_t), y)),
                          bounds=(np.log(lo), np.log(hi)), method="bounded",
                          options={"xatol": 1e-8})
    return float(np.exp(res.x))
