"""Tests of the Part III helpers: digits split, softmax regression, calibration, AUC."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from softmaxbook import softmax
from softmaxbook.calibration import expected_calibration_error, fit_temperature, reliability_bins
from softmaxbook.datasets import digits_split
from softmaxbook.ranking import auc_mann_whitney
from softmaxbook.regression import fit_softmax_regression, softmax_regression_objective


# --- data ---------------------------------------------------------------------------------------

def test_digits_split_is_fixed_stratified_and_disjoint():
    a, b = digits_split(), digits_split()
    np.testing.assert_array_equal(a.X_test, b.X_test)
    rows = [tuple(r) for r in np.concatenate([a.X_train, a.X_val, a.X_test])]
    assert len(rows) == 1797
    for y in (a.y_train, a.y_val, a.y_test):
        share = np.bincount(y, minlength=10) / len(y)
        np.testing.assert_allclose(share, 0.1, atol=0.012)
    assert a.X_train.min() >= 0 and a.X_train.max() <= 1
    assert a.images_test.shape == (360, 8, 8)
    np.testing.assert_allclose(a.images_test.reshape(360, 64) / 16, a.X_test)
    assert not np.array_equal(digits_split(seed=1).y_test, a.y_test)


def test_digits_split_bad_fractions():
    with pytest.raises(ValueError, match="sum below 1"):
        digits_split(val_fraction=0.6, test_fraction=0.5)


# --- softmax regression -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return digits_split()


def test_from_scratch_model_matches_scikit_learn(digits):
    lam = 1e-3
    model = fit_softmax_regression(digits.X_train, digits.y_train, l2=lam)
    sk = LogisticRegression(C=1 / (len(digits.y_train) * lam), tol=1e-10, max_iter=10_000)
    sk.fit(digits.X_train, digits.y_train)
    ours = softmax_regression_objective(model.W, model.b, digits.X_train, digits.y_train, lam)
    theirs = softmax_regression_objective(sk.coef_, sk.intercept_, digits.X_train, digits.y_train, lam)
    assert theirs <= ours <= theirs * 1.01           # within 1 % of the optimum
    acc_ours = np.mean(model.predict(digits.X_test) == digits.y_test)
    assert abs(acc_ours - sk.score(digits.X_test, digits.y_test)) <= 0.01 and acc_ours >= 0.95


def test_training_history_and_validation_loss(digits):
    model = fit_softmax_regression(digits.X_train, digits.y_train, epochs=30,
                                   X_val=digits.X_val, y_val=digits.y_val)
    h = model.history
    assert len(h["train_objective"]) == len(h["val_loss"]) == 31
    np.testing.assert_allclose(h["train_objective"][0], np.log(10))
    assert h["train_objective"][-1] < 0.3 * h["train_objective"][0]


def test_fit_is_deterministic_for_a_seed():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 3, 40)
    a = fit_softmax_regression(X, y, epochs=3, seed=5)
    b = fit_softmax_regression(X, y, epochs=3, seed=5)
    np.testing.assert_array_equal(a.W, b.W)


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(X=np.zeros(5), y=np.zeros(5, int)), ValueError, "2-d array"),
    (dict(X=np.zeros((3, 2)), y=[0, 1, -1]), IndexError, "label -1"),
    (dict(X=np.zeros((3, 2)), y=[0.0, 1.0, 1.0]), TypeError, "integer class indices"),
    (dict(X=np.zeros((3, 2)), y=[0, 1, 3], n_classes=3), IndexError, "label 3"),
    (dict(X=np.zeros((3, 2)), y=[0, 1, 1], epochs=0), ValueError, "epochs must be a positive integer"),
    (dict(X=np.zeros((3, 2)), y=[0, 1, 1], l2=-1.0), ValueError, "l2 must be a non-negative"),
    (dict(X=np.zeros((3, 2)), y=[0, 1, 1], X_val=np.zeros((2, 2))), ValueError, "both X_val and y_val"),
    (dict(X=np.zeros((0, 2)), y=np.zeros(0, int)), ValueError, "no training examples"),
])
def test_fit_bad_input(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        fit_softmax_regression(**kwargs)


def test_logits_checks_the_number_of_features():
    model = fit_softmax_regression(np.eye(3), [0, 1, 2], epochs=1)
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        model.logits(np.zeros((2, 4)))


# --- calibration --------------------------------------------------------------------------------

def test_calibrated_predictions_have_small_ece_and_overconfident_ones_do_not():
    rng = np.random.default_rng(1)
    z = rng.normal(scale=2, size=(20_000, 4))
    p = softmax(z)
    y = (rng.random(len(p))[:, None] > np.cumsum(p, axis=1)).sum(axis=1)   # y ~ p, row by row
    assert expected_calibration_error(p, y) < 0.02
    assert expected_calibration_error(softmax(3 * z), y) > 0.1
    assert abs(fit_temperature(3 * z, y) - 3) < 0.15


def test_ece_by_hand_and_bins():
    p = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    bins = reliability_bins(p, y, n_bins=4)
    assert bins["count"].tolist() == [0, 0, 2, 2]
    np.testing.assert_allclose(bins["accuracy"][2:], [1.0, 0.5])
    np.testing.assert_allclose(bins["confidence"][2:], [0.625, 0.95])
    expected = 0.5 * abs(1.0 - 0.625) + 0.5 * abs(0.5 - 0.95)
    np.testing.assert_allclose(expected_calibration_error(p, y, n_bins=4), expected)


def test_temperature_scaling_keeps_the_argmax():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(500, 5))
    y = rng.integers(0, 5, 500)
    T = fit_temperature(z, y)
    assert T > 1   # labels independent of z: flatten
    np.testing.assert_array_equal(np.argmax(z / T, axis=1), np.argmax(z, axis=1))


@pytest.mark.parametrize("probs, message", [
    (np.array([[2.0, -1.0]]), r"in \[0, 1\]"),
    (np.array([[0.2, 0.2]]), "sum to 1"),
    (np.array([0.5, 0.5]), r"shape \(n, K\)"),
])
def test_calibration_bad_input(probs, message):
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(probs, np.zeros(len(probs), dtype=int))


def test_fit_temperature_bad_bounds():
    with pytest.raises(ValueError, match="bounds"):
        fit_temperature(np.zeros((2, 2)), [0, 1], bounds=(0, 1))


# --- AUC ----------------------------------------------------------------------------------------

@given(arrays(np.float64, 30, elements=st.integers(-5, 5).map(float)), st.integers(0, 2**32 - 1))
def test_auc_equals_scikit_learn_with_ties_and_is_rank_invariant(scores, seed):
    labels = np.random.default_rng(seed).integers(0, 2, 30)
    labels[:2] = [0, 1]
    auc = auc_mann_whitney(scores, labels)
    np.testing.assert_allclose(auc, roc_auc_score(labels, scores), rtol=1e-12)
    np.testing.assert_allclose(auc_mann_whitney(np.exp(scores) * 7 + 1, labels), auc, rtol=1e-12)
    np.testing.assert_allclose(auc_mann_whitney(-scores, labels), 1 - auc, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scores, positive, exc, message", [
    ([0.1, np.nan], [0, 1], ValueError, "NaN"),
    ([0.1, 0.2], [0, 2], ValueError, "0/1"),
    ([0.1, 0.2], [1, 1], ValueError, "need both classes"),
    ([0.1, 0.2, 0.3], [0, 1], ValueError, "same length"),
    (["a", "b"], [0, 1], TypeError, "real numbers"),
])
def test_auc_bad_input(scores, positive, exc, message):
    with pytest.raises(exc, match=message):
        auc_mann_whitney(scores, positive)


def test_quantile_bins_hold_equal_numbers_and_bad_strategy():
    rng = np.random.default_rng(3)
    p = softmax(rng.normal(scale=3, size=(1000, 5)))
    y = rng.integers(0, 5, 1000)
    bins = reliability_bins(p, y, n_bins=10, strategy="quantile")
    assert bins["count"].sum() == 1000 and np.all(np.abs(bins["count"] - 100) <= 1)
    with pytest.raises(ValueError, match="strategy"):
        reliability_bins(p, y, strategy="equal")
