"""Unit tests of softmax, log_softmax and logsumexp: values, dtypes, bad input, special values."""

import numpy as np
import pytest
import scipy.special as ss

from softmaxbook import log_softmax, logsumexp, softmax
from softmaxbook import _validation

FUNCS = [softmax, log_softmax, logsumexp]
SCIPY = {softmax: ss.softmax, log_softmax: ss.log_softmax, logsumexp: ss.logsumexp}
FLOATS = [np.float16, np.float32, np.float64, np.longdouble]


def scipy_ref(f, z, axis=-1):
    with np.errstate(all="ignore"):
        return SCIPY[f](z, axis=axis)


# --- values -----------------------------------------------------------------------------------

def test_worked_examples():
    np.testing.assert_allclose(softmax([2.0, 1.0, 0.5]), [0.6285317, 0.2312239, 0.1402444], rtol=1e-6)
    np.testing.assert_allclose(softmax([1.5, 0.8, -0.2]), [0.5954973, 0.2957152, 0.1087875], rtol=1e-6)


@pytest.mark.parametrize("f", FUNCS)
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_matches_scipy_on_benign_input_for_every_axis(f, axis):
    z = np.random.default_rng(1).normal(scale=3, size=(3, 4, 5))
    np.testing.assert_allclose(f(z, axis=axis), scipy_ref(f, z, axis), rtol=1e-13, atol=1e-15)


def test_temperature_is_division_of_logits():
    z = np.random.default_rng(2).normal(size=(4, 6))
    for t in [1e-3, 0.5, 1, 3, 1e4]:
        np.testing.assert_allclose(softmax(z, temperature=t), ss.softmax(z / t, axis=-1), rtol=1e-12)


def test_log_softmax_keeps_tiny_log_probability_of_dominant_class():
    # exact value: -log1p(exp(-46)) = -exp(-46) + ... = -1.0530617357553812e-20
    got = log_softmax([0.0, -46.0])[0]
    np.testing.assert_allclose(got, -1.0530617357553812e-20, rtol=1e-15)
    assert ss.log_softmax([0.0, -46.0])[0] == 0.0  # what SciPy gives, for the record


def test_no_overflow_or_underflow_at_extremes():
    np.testing.assert_allclose(softmax([1e308, 1e308]), [0.5, 0.5])
    np.testing.assert_allclose(softmax([-1e308, -1e308]), [0.5, 0.5])
    assert logsumexp([1e308, 1e308]) == 1e308
    np.testing.assert_allclose(log_softmax([1000.0, 0.0]), [0.0, -1000.0])


def test_logsumexp_reduces_axis_and_returns_scalar_for_1d():
    z = np.zeros((2, 3, 4))
    assert logsumexp(z, axis=1).shape == (2, 4)
    assert np.ndim(logsumexp([1.0, 2.0])) == 0


# --- dtypes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("f", FUNCS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_float_dtype_is_preserved(f, dtype):
    z = np.array([[1.0, 2.0, 3.0]], dtype=dtype)
    assert np.asarray(f(z)).dtype == dtype


@pytest.mark.parametrize("f", FUNCS)
@pytest.mark.parametrize("value", [np.array([1, 2, 3], dtype=np.int8), np.array([1, 2, 3], dtype=np.uint64),
                                   np.array([True, False]), [1, 2, 3]])
def test_integer_and_bool_are_promoted_to_float64(f, value):
    out = np.asarray(f(value))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, scipy_ref(f, np.asarray(value, dtype=np.float64)), rtol=1e-14)


# --- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("f", FUNCS)
@pytest.mark.parametrize("bad, words", [
    ("abc", "string"),
    (np.array(["a", "b"]), "dtype <U1"),
    (np.array([1.0, 2.0], dtype=object), "dtype object"),
    (np.array([1 + 2j, 3j]), "complex"),
    ([[1.0, 2.0], [3.0]], "rectangular"),
    ([None, 1.0], "dtype object"),
])
def test_non_real_input_raises_type_error_naming_the_problem(f, bad, words):
    with pytest.raises(TypeError, match=words):
        f(bad)


@pytest.mark.parametrize("f", FUNCS)
def test_bad_axis(f):
    with pytest.raises(np.exceptions.AxisError):
        f(np.zeros((2, 3)), axis=2)
    with pytest.raises(np.exceptions.AxisError):
        f(np.zeros((2, 3)), axis=-3)
    with pytest.raises(np.exceptions.AxisError):
        f(np.float64(3.0))
    with pytest.raises(TypeError, match="axis"):
        f(np.zeros((2, 3)), axis=(0, 1))
    with pytest.raises(TypeError, match="axis"):
        f(np.zeros((2, 3)), axis=1.0)


@pytest.mark.parametrize("t", [0, -1.0, np.inf, np.nan])
def test_bad_temperature_value(t):
    with pytest.raises(ValueError, match="temperature"):
        softmax([1.0, 2.0], temperature=t)


@pytest.mark.parametrize("t", ["2", None, True, [1.0]])
def test_bad_temperature_type(t):
    with pytest.raises(TypeError, match="temperature"):
        softmax([1.0, 2.0], temperature=t)


@pytest.mark.parametrize("f", FUNCS)
def test_input_is_never_modified(f):
    z = np.random.default_rng(3).normal(size=(3, 5))
    z[1, 2] = np.nan
    z[2, 0] = -np.inf
    before = z.copy()
    f(z)
    np.testing.assert_array_equal(z, before)


# --- special values ---------------------------------------------------------------------------

@pytest.mark.parametrize("f", FUNCS)
def test_nan_is_confined_to_its_own_row(f):
    z = np.random.default_rng(4).normal(size=(4, 5))
    z[2, 3] = np.nan
    out = np.asarray(f(z))
    clean = np.asarray(f(np.delete(z, 2, axis=0)))
    assert np.all(np.isnan(out[2]))
    np.testing.assert_array_equal(np.delete(out, 2, axis=0), clean)


@pytest.mark.parametrize("row", [
    [-np.inf, 0.0, 1.0],          # some -inf: probability 0
    [-np.inf, -np.inf],           # all -inf
    [np.inf, 1.0],                # +inf
    [np.inf, np.inf, 1.0],
    [np.nan, 1.0],
    [np.inf, -np.inf],
])
def test_special_values_follow_scipy(row):
    z = np.array(row)
    np.testing.assert_allclose(softmax(z), scipy_ref(softmax, z), rtol=5e-16)
    np.testing.assert_allclose(logsumexp(z), scipy_ref(logsumexp, z), rtol=5e-16)
    np.testing.assert_allclose(log_softmax(z), scipy_ref(log_softmax, z), rtol=5e-16)


def test_minus_inf_entries_get_zero_probability():
    np.testing.assert_array_equal(softmax([-np.inf, 0.0, 0.0]), [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(log_softmax([-np.inf, 0.0])[0], -np.inf)


@pytest.mark.parametrize("f", [softmax, log_softmax])
def test_empty_axis_gives_empty_output(f):
    for shape, axis in [((3, 0), -1), ((0, 4), 0), ((0,), 0)]:
        out = f(np.zeros(shape, dtype=np.float32), axis=axis)
        assert out.shape == shape and out.dtype == np.float32
    out = f(np.zeros((0, 4)), axis=1)            # empty batch of 4-class rows
    assert out.shape == (0, 4)


def test_logsumexp_of_empty_axis_is_minus_inf_like_scipy():
    np.testing.assert_array_equal(logsumexp(np.zeros((3, 0))), ss.logsumexp(np.zeros((3, 0)), axis=-1))
    assert logsumexp(np.zeros((3, 0))).shape == (3,)


def test_no_warnings_on_special_values():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for f in FUNCS:
            f(np.array([[np.inf, 1.0], [-np.inf, -np.inf], [np.nan, 0.0], [1e308, -1e308]]))


def test_working_precision_choice():
    assert _validation.working_dtype(np.float16) == np.float64
    assert _validation.working_dtype(np.float32) == np.float64
    expected = np.longdouble if _validation.HAS_EXTENDED else np.float64
    assert _validation.working_dtype(np.float64) == expected


def test_compensated_float64_path_without_extended_precision(monkeypatch):
    """The TwoSum path used where long double is plain float64 (e.g. Windows, macOS on Arm)."""
    from softmaxbook import core
    monkeypatch.setattr(core, "HAS_EXTENDED", False)
    monkeypatch.setattr(_validation, "HAS_EXTENDED", False)
    z = np.random.default_rng(5).uniform(-700, 700, size=(4, 300))
    ref = ss.softmax(z.astype(np.longdouble), axis=-1)   # SciPy in long double as the reference
    # within about 2 eps (the reference itself is rounded once); atol covers subnormal outputs
    np.testing.assert_allclose(softmax(z), ref.astype(np.float64), rtol=5e-16, atol=1e-300)
    ref_log = ss.log_softmax(z.astype(np.longdouble), axis=-1).astype(np.float64)
    np.testing.assert_allclose(log_softmax(z), ref_log, rtol=5e-16)
