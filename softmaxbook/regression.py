"""Softmax regression trained from scratch with mini-batch gradient descent.

Chapter 6 derives and writes this loop; later chapters import it from here.
The objective is the mean cross-entropy plus an L2 penalty on the weights
(not on the biases)::

    C(W, b) = mean_n( -log softmax(W x_n + b)[y_n] ) + (l2 / 2) * ||W||^2
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._validation import as_real_array, check_finite, check_labels, check_number
from .losses import cross_entropy, cross_entropy_grad

__all__ = ["SoftmaxRegression", "fit_softmax_regression", "softmax_regression_objective"]

#: A sanity limit on K * d, against labels such as 2**62 that would ask for absurd arrays.
_MAX_PARAMETERS = 10 ** 9


@dataclass
class SoftmaxRegression:
    """Weights ``W`` (K, d) and biases ``b`` (K,) of a trained model, with its training history."""

    W: np.ndarray
    b: np.ndarray
    l2: float
    history: dict = field(default_factory=dict)

    def logits(self, X):
        """Logits ``X @ W.T + b`` for the rows of ``X`` (finite, shape ``(n, d)``)."""
        X = as_real_array(X, name="X")
        if X.ndim != 2 or X.shape[1] != self.W.shape[1]:
            raise ValueError(f"X must have shape (n, {self.W.shape[1]}), got {X.shape}")
        check_finite(X, "X")
        return X @ self.W.T + self.b

    def predict(self, X):
        """The most probable class of each row of ``X``."""
        return np.argmax(self.logits(X), axis=1)


def _check_data(X, y, n_classes=None, names=("X", "y")):
    X = as_real_array(X, name=names[0])
    if X.ndim != 2:
        raise ValueError(f"{names[0]} must be a 2-d array (examples, features), got shape {X.shape}")
    check_finite(X, names[0])
    y = np.asarray(y)
    if n_classes is not None:
        n_classes = check_number(n_classes, "n_classes", low=1, integer=True)
        if n_classes * max(X.shape[1], 1) > _MAX_PARAMETERS:
            raise ValueError(f"n_classes = {n_classes} would need more than {_MAX_PARAMETERS} weights")
    if n_classes is None:
        if y.dtype.kind not in "iu" or y.size == 0:
            check_labels(y, X.shape[:1] + (1,))  # non-integer labels: the usual TypeError
            raise ValueError("there are no training examples")
        n_classes = max(int(np.max(y)) + 1, 1)
        if n_classes * max(X.shape[1], 1) > _MAX_PARAMETERS:
            raise ValueError(f"{names[1]} has a label of {n_classes - 1}: that many classes would "
                             f"need more than {_MAX_PARAMETERS} weights (pass labels 0..K-1)")
    return X, check_labels(y, (X.shape[0], n_classes), logits_name="the classes",
                           name=names[1]), n_classes


def softmax_regression_objective(W, b, X, y, l2):
    """The training objective: mean cross-entropy plus ``l2 / 2 * ||W||^2``.

    Examples
    --------
    >>> import numpy as np
    >>> X, y = np.eye(3), np.array([0, 1, 2])
    >>> round(float(softmax_regression_objective(np.zeros((3, 3)), np.zeros(3), X, y, 0.1)), 6)
    1.098612
    """
    return float(cross_entropy(np.asarray(X) @ np.asarray(W).T + b, y)) + l2 / 2 * float(np.sum(np.square(W)))


def fit_softmax_regression(X, y, n_classes=None, l2=1e-3, epochs=300, batch_size=64,
                           learning_rate=1.0, decay_epochs=50, seed=0, X_val=None, y_val=None):
    """Fit softmax regression by mini-batch gradient descent.

    Each epoch visits the training rows in a new random order, in batches of
    ``batch_size``; the step size is ``learning_rate / (1 + epoch / decay_epochs)``.
    The gradient of a batch is ``cross_entropy_grad(logits, labels).T @ X + l2 * W``
    for the weights and the column sums of ``cross_entropy_grad`` for the biases.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Training inputs.
    y : array_like of int, shape (n,)
        Class labels in ``0 .. n_classes - 1``.
    n_classes : int, optional
        Number of classes ``K`` (default: ``max(y) + 1``).
    l2 : float, optional
        Strength of the L2 penalty on the weights (``>= 0``).
    epochs, batch_size : int, optional
        Passes over the data, and rows per gradient step.
    learning_rate, decay_epochs : float, optional
        Initial step size, and the epoch scale of its ``1 / (1 + t)`` decay.
    seed : int, optional
        Seed of the shuffling.
    X_val, y_val : array_like, optional
        If given, the validation loss (mean cross-entropy) is recorded after each epoch.

    Returns
    -------
    SoftmaxRegression
        With ``history["train_objective"]`` (and ``history["val_loss"]``), one entry per epoch
        plus the starting point.

    Raises
    ------
    TypeError, ValueError, IndexError
        For non-numeric, non-finite (NaN, inf) or mis-shaped data, labels out
        of range, or bad settings; each message names the argument.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-2, 1, (50, 2)), rng.normal(2, 1, (50, 2))])
    >>> y = np.repeat([0, 1], 50)
    >>> model = fit_softmax_regression(X, y, epochs=20)
    >>> float(np.mean(model.predict(X) == y)) > 0.95
    True
    """
    X, y, K = _check_data(X, y, n_classes)
    epochs = check_number(epochs, "epochs", low=1, integer=True)
    seed = check_number(seed, "seed", low=0, integer=True)
    batch_size = check_number(batch_size, "batch_size", low=1, integer=True)
    l2 = check_number(l2, "l2", low=0)
    learning_rate = check_number(learning_rate, "learning_rate", low=0, strict=True)
    decay_epochs = check_number(decay_epochs, "decay_epochs", low=0, strict=True)
    if (X_val is None) != (y_val is None):
        raise ValueError("give both X_val and y_val, or neither")
    if X_val is not None:
        X_val, y_val, _ = _check_data(X_val, y_val, K, names=("X_val", "y_val"))
        if X_val.shape[1] != X.shape[1]:
            raise ValueError(f"X_val has {X_val.shape[1]} features, X has {X.shape[1]}")

    rng = np.random.default_rng(seed)
    W = np.zeros((K, X.shape[1]))
    b = np.zeros(K)
    history = {"train_objective": [], "val_loss": []}

    def record():
        history["train_objective"].append(softmax_regression_objective(W, b, X, y, l2))
        if X_val is not None:
            history["val_loss"].append(float(cross_entropy(X_val @ W.T + b, y_val)))

    record()
    for epoch in range(epochs):
        step = learning_rate / (1 + epoch / decay_epochs)
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            rows = order[start:start + batch_size]
            G = cross_entropy_grad(X[rows] @ W.T + b, y[rows])
            W -= step * (G.T @ X[rows] + l2 * W)
            b -= step * G.sum(axis=0)
        record()
    if X_val is None:
        del history["val_loss"]
    return SoftmaxRegression(W=W, b=b, l2=l2, history=history)
