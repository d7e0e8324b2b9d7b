"""Accuracy against a 50-digit mpmath reference, in units of the dtype's eps.

For each dtype and each adversarial family of logits, measure the largest
relative error of softmax, log_softmax and logsumexp, for this package and for
scipy.special, and require (issue 2):

* the package is never worse than SciPy;
* the package is within 2 eps in float64 and within 1 eps in float32 and float16.

The relative error of an entry is |got - exact| / max(|exact|, tiny) / eps, with
tiny the dtype's smallest normal number (see softmaxbook.reference.error_in_eps).
The table is written to _build/reports/ and printed at the end of the run.
"""

from pathlib import Path

import mpmath
import numpy as np
import pytest
import scipy.special as ss

import softmaxbook as sb
from softmaxbook.reference import (
    error_in_eps,
    mp_cross_entropy,
    mp_cross_entropy_grad,
    mp_log_softmax,
    mp_logsumexp,
    mp_softmax,
    mp_softmax_jacobian,
)

REPORTS = Path(__file__).resolve().parents[1] / "_build" / "reports"
LIMIT = {np.float16: 1.0, np.float32: 1.0, np.float64: 2.0}
DPS = 50


def families(dtype):
    """Adversarial logits for ``dtype``: name -> 2-d array (rows are independent)."""
    rng = np.random.default_rng(12345)
    fi = np.finfo(dtype)
    hi = float(np.log(fi.max))          # ~ 11 (float16), 88 (float32), 709 (float64)
    big = {np.float16: 6e4, np.float32: 3e38, np.float64: 1.7e308}[dtype]
    fam = {
        "huge (near the largest float)": big * (1 - rng.uniform(0, 8 * fi.eps, (4, 50))),
        "huge offset, moderate spread": 1e4 * (dtype != np.float16) + 500 + rng.uniform(-hi, 0, (4, 200)),
        "tiny (|z| ~ 1e-20)": rng.normal(0, 1e-20, (4, 50)) if dtype != np.float16 else rng.normal(0, 1e-6, (4, 50)),
        "wide range (spread 2 log(max))": rng.uniform(-hi, hi, (8, 300)),
        "moderate N(0, 3)": rng.normal(0, 3, (8, 300)),
        "one dominant entry": np.concatenate([np.zeros((6, 1)), -rng.uniform(0.5 * hi, 0.9 * hi, (6, 30))], axis=1),
        "near-ties": 3.0 + rng.normal(0, 50 * fi.eps, (6, 100)),
        "K = 2": rng.normal(0, hi / 4, (50, 2)),
        "K = 1e5": rng.normal(0, hi / 6, (1, 100_000)),
    }
    return {name: np.asarray(z, dtype=dtype) for name, z in fam.items()}


def mp_reference(z):
    """Exact (50-digit) softmax, log_softmax and logsumexp of each row of ``z``."""
    return {"softmax": mp_softmax(z, dps=DPS), "log_softmax": mp_log_softmax(z, dps=DPS),
            "logsumexp": mp_logsumexp(z, dps=DPS)}


def ours_and_scipy(name, z):
    with np.errstate(all="ignore"):
        if name == "logsumexp":
            return sb.logsumexp(z, axis=-1), ss.logsumexp(z, axis=-1)
        return getattr(sb, name)(z, axis=-1), getattr(ss, name)(z, axis=-1)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_accuracy_in_eps_against_mpmath(dtype):
    rows, failures = [], []
    for family, z in families(dtype).items():
        exact = mp_reference(z)
        for func in ["softmax", "log_softmax", "logsumexp"]:
            ours, scipy_out = ours_and_scipy(func, z)
            ref = np.array(exact[func], dtype=object)
            e_ours = error_in_eps(np.asarray(ours, dtype=dtype), ref, dtype)
            e_scipy = error_in_eps(np.asarray(scipy_out).astype(dtype), ref, dtype)
            rows.append((family, func, e_ours, e_scipy))
            if e_ours > LIMIT[dtype]:
                failures.append(f"{family} / {func}: {e_ours:.3g} eps > {LIMIT[dtype]} eps")
            if e_ours > e_scipy:
                failures.append(f"{family} / {func}: {e_ours:.3g} eps, worse than SciPy's {e_scipy:.3g}")
    table = [f"### {np.dtype(dtype).name} (limit {LIMIT[dtype]} eps)", "",
             "| logits | function | softmaxbook (eps) | scipy.special (eps) |", "|---|---|---:|---:|"]
    table += [f"| {f} | {fn} | {a:.3g} | {b:.3g} |" for f, fn, a, b in rows]
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"accuracy_{np.dtype(dtype).name}.md").write_text("\n".join(table) + "\n")
    assert not failures, "\n".join(failures + [""] + table)


def test_error_measure_can_fail():
    """The measure flags a result that is one ulp off in the wrong place."""
    z = np.array([[0.0, -1.0, -2.0]])
    exact = np.array(mp_reference(z)["softmax"], dtype=object)
    good = sb.softmax(z)
    assert error_in_eps(good, exact) <= 1
    bad = good.copy()
    bad[0, 2] = np.nextafter(np.nextafter(np.nextafter(bad[0, 2], 1), 1), 1)
    assert error_in_eps(bad, exact) > 2


DERIV_LIMIT = {np.float16: 1.0, np.float32: 1.0, np.float64: 3.0}


def labels_for(z):
    """Half the rows labelled with their argmax (confident and right: the tiny-loss case)."""
    y = np.random.default_rng(7).integers(0, z.shape[-1], size=z.shape[0])
    y[::2] = np.argmax(z[::2], axis=-1)
    return y


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_loss_gradient_and_jacobian_accuracy_in_eps(dtype):
    """cross_entropy (per row and mean), cross_entropy_grad and softmax_jacobian, in eps."""
    rows, failures = [], []
    for family, z in families(dtype).items():
        z = z[:4, :64]  # the Jacobian has K**2 entries per row
        y = labels_for(z)
        exact_losses = mp_cross_entropy(z, y, dps=DPS)
        with mpmath.workdps(DPS):
            exact = {
                "cross_entropy (none)": exact_losses,
                "cross_entropy (mean)": np.array([mpmath.fsum(exact_losses) / len(y)], dtype=object),
                "cross_entropy_grad": mp_cross_entropy_grad(z, y, dps=DPS),
            }
        exact["softmax_jacobian"] = mp_softmax_jacobian(z, dps=DPS)
        got = {
            "cross_entropy (none)": sb.cross_entropy(z, y, reduction="none"),
            "cross_entropy (mean)": np.atleast_1d(sb.cross_entropy(z, y)),
            "cross_entropy_grad": sb.cross_entropy_grad(z, y),
            "softmax_jacobian": sb.softmax_jacobian(z),
        }
        for func in got:
            err = error_in_eps(got[func], exact[func], dtype)
            rows.append((family, func, err))
            if err > DERIV_LIMIT[dtype]:
                failures.append(f"{family} / {func}: {err:.3g} eps > {DERIV_LIMIT[dtype]} eps")
    table = [f"### {np.dtype(dtype).name}: loss, gradient, Jacobian (limit {DERIV_LIMIT[dtype]} eps)", "",
             "| logits (first 4 rows, 64 columns) | function | softmaxbook (eps) |", "|---|---|---:|"]
    table += [f"| {f} | {fn} | {a:.3g} |" for f, fn, a in rows]
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"accuracy_derivatives_{np.dtype(dtype).name}.md").write_text("\n".join(table) + "\n")
    assert not failures, "\n".join(failures + [""] + table)


def test_naive_loss_and_gradient_are_caught_by_the_measure():
    """log(softmax) and softmax - onehot fail the same check the package passes."""
    z = np.array([[0.0, -40.0, -45.0]])
    y = np.array([0])
    exact = mp_cross_entropy(z, y, dps=DPS)
    naive_loss = -np.log(sb.softmax(z))[0, y]
    assert error_in_eps(naive_loss, exact) > 1e10
    exact_grad = mp_cross_entropy_grad(z, y, dps=DPS)
    assert error_in_eps(sb.softmax(z) - np.array([[1.0, 0, 0]]), exact_grad) > 1e10
    assert error_in_eps(sb.cross_entropy_grad(z, y), exact_grad) <= 1


def test_derivatives_without_extended_precision(monkeypatch):
    """The TwoSum float64 path (platforms whose long double is float64) stays within 3 eps."""
    from softmaxbook import _validation, core
    monkeypatch.setattr(core, "HAS_EXTENDED", False)
    monkeypatch.setattr(_validation, "HAS_EXTENDED", False)
    fam = families(np.float64)
    for name in ["wide range (spread 2 log(max))", "one dominant entry", "huge offset, moderate spread"]:
        z = fam[name][:3, :40]
        y = labels_for(z)
        assert error_in_eps(sb.softmax_jacobian(z), mp_softmax_jacobian(z, dps=DPS)) <= 3, name
        assert error_in_eps(sb.cross_entropy_grad(z, y), mp_cross_entropy_grad(z, y, dps=DPS)) <= 3, name
        assert error_in_eps(sb.cross_entropy(z, y, reduction="none"),
                            mp_cross_entropy(z, y, dps=DPS)) <= 3, name
