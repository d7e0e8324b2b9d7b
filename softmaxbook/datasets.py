"""Data sets used by the chapters: shipped inside packages or generated, never downloaded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_number

__all__ = ["DigitsSplit", "digits_split"]


@dataclass(frozen=True)
class DigitsSplit:
    """A fixed, stratified train/validation/test split of scikit-learn's digits."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    images_test: np.ndarray


def digits_split(seed=0, val_fraction=0.2, test_fraction=0.2):
    """The 1797 handwritten digits of :func:`sklearn.datasets.load_digits`, split three ways.

    Pixels (0..16) are scaled to [0, 1]. The split is stratified by class and
    fixed by ``seed``, so every chapter that calls this sees the same examples.

    Parameters
    ----------
    seed : int, optional
        Seed of the split.
    val_fraction, test_fraction : float, optional
        Fractions of all examples held out for validation and for testing.

    Returns
    -------
    DigitsSplit
        Arrays ``X_*`` of shape ``(n, 64)`` (float64), labels ``y_*`` (int),
        and the 8x8 test images ``images_test`` for plotting.

    Raises
    ------
    ValueError
        If the fractions are not positive or leave no training data, or the
        seed is negative.
    TypeError
        If the seed is not an integer or a fraction not a number.

    Examples
    --------
    >>> d = digits_split()
    >>> d.X_train.shape, d.X_val.shape, d.X_test.shape
    ((1077, 64), (360, 64), (360, 64))
    >>> sorted(set(d.y_test.tolist())) == list(range(10))
    True
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    seed = check_number(seed, "seed", low=0, integer=True)
    if seed >= 2 ** 32:
        raise ValueError(f"seed must be below 2**32 (scikit-learn's limit), got {seed}")
    val_fraction = check_number(val_fraction, "val_fraction")
    test_fraction = check_number(test_fraction, "test_fraction")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction and test_fraction must be in (0, 1) with a sum below 1, "
            f"got {val_fraction!r} and {test_fraction!r}"
        )
    data = load_digits()
    n, n_classes = len(data.target), 10
    for name, fraction in [("val_fraction", val_fraction), ("test_fraction", test_fraction),
                           ("the training fraction", 1 - val_fraction - test_fraction)]:
        if fraction * n < n_classes:
            raise ValueError(f"{name} = {fraction!r} leaves fewer than {n_classes} of the {n} "
                             "examples, one per class, which a stratified split needs")
    X = data.data / 16.0
    y = data.target.astype(np.intp)
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction),
                                  stratify=y[rest], random_state=seed)
    return DigitsSplit(X[train], y[train], X[val], y[val], X[test], y[test], data.images[test])
