"""Helpers for the autograded exercises: an answer must compute what is asked, itself.

An exercise such as "write a stable softmax" is meaningless if the answer may simply call
:func:`softmaxbook.softmax`. The test cells run the student's function inside
:func:`forbidden`, which replaces the named package functions (wherever the package and the
notebook hold them) by stand-ins that fail with a message saying what is not allowed.

A test cell must also not be fooled by an answer cell that redefines the helpers the test
uses (``np.testing.assert_allclose = lambda *a, **k: None``) or returns nothing.
:func:`check_close` and :func:`check` compare with NumPy functions captured when the package
was imported (before any answer cell ran), first make sure that the usual test helpers are
still NumPy's own (:func:`check_helpers`), and say in their message what is wrong.
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np
import numpy.testing as _npt

__all__ = ["forbidden", "SOFTMAX_FAMILY", "check", "check_close", "check_helpers"]

# NumPy's own functions, captured at import (the package is imported by a chapter's first
# cell, before any answer cell runs).
_HELPERS = {
    ("numpy.testing", "assert_allclose"): _npt.assert_allclose,
    ("numpy.testing", "assert_array_equal"): _npt.assert_array_equal,
    ("numpy.testing", "assert_equal"): _npt.assert_equal,
    ("numpy", "allclose"): np.allclose,
    ("numpy", "isclose"): np.isclose,
    ("numpy", "array_equal"): np.array_equal,
    ("numpy", "all"): np.all,
    ("numpy", "asarray"): np.asarray,
    ("numpy", "isfinite"): np.isfinite,
}
_MODULES = {"numpy": np, "numpy.testing": _npt}
_assert_allclose = _npt.assert_allclose
_asarray = np.asarray

#: Every function of the package that computes a softmax, a log-sum-exp, or something from
#: which either follows in one line (a loss, a normalizer, a Jacobian, a reference): an
#: exercise that asks for one of them forbids them all, so that no detour through a sibling
#: (``exp(z - logsumexp(z))``, ``softmax_kernel``, ``cross_entropy(..., "none")``) passes.
SOFTMAX_FAMILY = (
    "softmax", "log_softmax", "logsumexp", "fast_softmax", "online_softmax",
    "online_normalizer", "merge_normalizers", "softmax_kernel", "softmax_jacobian",
    "softmax_jvp", "cross_entropy", "cross_entropy_grad", "mp_softmax", "mp_log_softmax",
    "mp_logsumexp", "mp_softmax_jacobian", "mp_cross_entropy", "mp_cross_entropy_grad",
)


@contextlib.contextmanager
def forbidden(namespace, *names, exercise=""):
    """Within the ``with`` block, calling any of ``names`` raises ``AssertionError``.

    Parameters
    ----------
    namespace : dict
        The notebook's globals (``globals()``): a name imported there is replaced too.
    *names : str
        Names of public functions of :mod:`softmaxbook` or its modules (``"softmax"``,
        ``"fit_temperature"``, ``"mp_softmax"``, ...). Every name bound to the same function,
        in the package and in ``namespace`` (aliases included), is replaced.
    exercise : str, optional
        The exercise label, for the message.

    Examples
    --------
    >>> import softmaxbook
    >>> from softmaxbook import softmax
    >>> with forbidden(globals(), "softmax", exercise="ex-1-2"):
    ...     softmax([1.0, 2.0])
    Traceback (most recent call last):
    ...
    AssertionError: ex-1-2: your answer calls softmaxbook's softmax; write it yourself
    >>> float(softmax([0.0, 0.0])[0])        # restored afterwards
    0.5
    """
    import importlib

    import softmaxbook

    for module in ("reference", "calibration", "regression", "ranking", "datasets",
                   "plotting", "glue", "kernel"):
        importlib.import_module(f"softmaxbook.{module}")
    modules = {n: m for n, m in sys.modules.items()
               if m is not None and (n == "softmaxbook" or n.startswith("softmaxbook."))}
    saved = []
    for name in names:
        # callables only: "glue" names the function glue, not the submodule
        found = [getattr(m, name) for m in modules.values()
                 if callable(getattr(m, name, None))]
        if not found:
            raise LookupError(f"softmaxbook has no function {name!r} to forbid")
        original = found[0]

        def stand_in(*args, _name=name, **kwargs):
            raise AssertionError(f"{exercise + ': ' if exercise else ''}your answer calls "
                                 f"softmaxbook's {_name}; write it yourself")

        holders = [m.__dict__ for m in modules.values()]
        holders.append(namespace)
        for d in holders:
            for key, value in list(d.items()):
                if value is original:
                    saved.append((d, key, value))
                    d[key] = stand_in
    try:
        yield
    finally:
        for d, key, value in reversed(saved):
            d[key] = value


def check_helpers():
    """Raise ``AssertionError`` if an answer has replaced a NumPy test helper.

    Examples
    --------
    >>> check_helpers()                     # nothing replaced: no error
    >>> import numpy as np
    >>> saved = np.testing.assert_allclose
    >>> np.testing.assert_allclose = lambda *args, **kwargs: None
    >>> check_helpers()
    Traceback (most recent call last):
    ...
    AssertionError: numpy.testing.assert_allclose has been redefined; a test helper must stay NumPy's own (restart the kernel and run the notebook again)
    >>> np.testing.assert_allclose = saved
    """
    for (module, name), original in _HELPERS.items():
        if getattr(_MODULES[module], name, None) is not original:
            raise AssertionError(
                f"{module}.{name} has been redefined; a test helper must stay NumPy's own "
                "(restart the kernel and run the notebook again)")


def check(condition, message):
    """``assert condition, message``, after :func:`check_helpers`; ``condition`` must be a
    real ``True`` (a NumPy boolean counts), not merely something truthy."""
    check_helpers()
    if not (condition is True or (isinstance(condition, np.bool_) and bool(condition))):
        raise AssertionError(message)


def check_close(got, want, message, *, rtol=1e-7, atol=0.0, shape=True):
    """Assert that an answer ``got`` equals ``want`` to within ``rtol`` and ``atol``.

    Unlike a bare ``np.testing.assert_allclose`` it fails, with ``message`` and the reason,
    when ``got`` is ``None`` or not numeric, when its shape differs from ``want``'s (unless
    ``shape=False``), and when a test helper has been redefined.

    Examples
    --------
    >>> check_close([0.5, 0.5], [0.5, 0.5], "two equal logits")
    >>> check_close(None, [0.5, 0.5], "two equal logits")
    Traceback (most recent call last):
    ...
    AssertionError: two equal logits: the answer returned None
    >>> check_close([[0.5, 0.5]], [0.5, 0.5], "two equal logits")
    Traceback (most recent call last):
    ...
    AssertionError: two equal logits: expected shape (2,), got (1, 2)
    """
    check_helpers()
    if got is None:
        raise AssertionError(f"{message}: the answer returned None")
    try:
        g = _asarray(got, dtype=float) if not np.iscomplexobj(got) else _asarray(got)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{message}: the answer is not an array of numbers "
                             f"({type(got).__name__})") from exc
    w = _asarray(want)
    if not np.iscomplexobj(w):
        w = w.astype(float)     # mpmath references arrive as object arrays
    if shape and g.shape != w.shape:
        raise AssertionError(f"{message}: expected shape {w.shape}, got {g.shape}")
    _assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=message)
