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
import types

import numpy as np
import numpy.testing as _npt

__all__ = ["forbidden", "SOFTMAX_FAMILY", "check", "check_close", "check_helpers", "original",
           "recording_merges"]

# NumPy's own functions, captured at import (the package is imported by a chapter's first
# cell, before any answer cell runs). They are kept on ``sys`` so that a test cell that
# reloads this module (to undo an answer's redefinition of check or check_close) keeps the
# originals, not what an answer may have put in their place since.
_HELPERS = getattr(sys, "_softmaxbook_test_helpers", None) or {
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
sys._softmaxbook_test_helpers = _HELPERS
_MODULES = {"numpy": np, "numpy.testing": _npt}
_assert_allclose = _HELPERS[("numpy.testing", "assert_allclose")]
_asarray = _HELPERS[("numpy", "asarray")]


def _package_originals():
    """The package's public functions as first imported (kept on ``sys``, like _HELPERS)."""
    found = getattr(sys, "_softmaxbook_originals", None)
    if found is None:
        import softmaxbook

        found = {name: getattr(softmaxbook, name) for name in softmaxbook.__all__
                 if callable(getattr(softmaxbook, name, None))}
        sys._softmaxbook_originals = found
    return found


def original(name):
    """The package's function ``name`` as it was when the package was first imported.

    A test cell compares an answer with ``original("softmax")``, not with whatever the
    notebook's ``softmax`` is bound to by then (an answer cell may have rebound it).

    Examples
    --------
    >>> import softmaxbook
    >>> original("softmax") is softmaxbook.softmax
    True
    """
    return _package_originals()[name]

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


#: Package functions whose SciPy namesake (``scipy.special.<name>``) is forbidden with them.
_SCIPY_TWINS = ("softmax", "log_softmax", "logsumexp")


def _refuse(*args, **kwargs):
    # the code of a forbidden function while an answer runs (its globals hold the message)
    raise AssertionError(_softmaxbook_forbidden_message)  # noqa: F821


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
    >>> import functools
    >>> kept = functools.partial(softmax, axis=-1)      # a reference the names do not show
    >>> with forbidden(globals(), "softmax", exercise="ex-1-2"):
    ...     kept([1.0, 2.0])
    Traceback (most recent call last):
    ...
    AssertionError: ex-1-2: your answer calls one of softmax (from softmaxbook, or SciPy's twin); write it yourself
    >>> import scipy.special
    >>> with forbidden(globals(), "softmax", exercise="ex-1-2"):
    ...     scipy.special.softmax([1.0, 2.0])
    Traceback (most recent call last):
    ...
    AssertionError: ex-1-2: your answer calls one of softmax (from softmaxbook, or SciPy's twin); write it yourself
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
    saved, targets = [], []
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
        targets.append(original)
        if name in _SCIPY_TWINS:            # the same function from SciPy is no way round
            import scipy.special

            targets.append(getattr(scipy.special, name))
    # A reference kept elsewhere (functools.partial, a default argument, a closure) still
    # calls the original function object: its code is swapped for one that refuses.
    message = (f"{exercise + ': ' if exercise else ''}your answer calls one of "
               f"{', '.join(names)} (from softmaxbook, or SciPy's twin); write it yourself")
    swapped = []
    for function in targets:
        if isinstance(function, types.FunctionType) and not function.__closure__:
            swapped.append((function, function.__code__))
            function.__globals__["_softmaxbook_forbidden_message"] = message
            function.__code__ = _refuse.__code__
    try:
        yield
    finally:
        for function, code in swapped:
            function.__code__ = code
            function.__globals__.pop("_softmaxbook_forbidden_message", None)
        for d, key, value in reversed(saved):
            d[key] = value


def _replace_everywhere(namespace, replacements):
    """Bind every name that refers to a key of ``replacements`` (in the package's modules and
    in ``namespace``) to its value; return the list needed to undo it."""
    modules = [m for n, m in sys.modules.items()
               if m is not None and (n == "softmaxbook" or n.startswith("softmaxbook."))]
    saved = []
    for d in [m.__dict__ for m in modules] + [namespace]:
        for key, value in list(d.items()):
            for old, new in replacements.items():
                if value is old:
                    saved.append((d, key, value))
                    d[key] = new
    return saved


@contextlib.contextmanager
def recording_merges(namespace):
    """Record how an answer combines ``online_normalizer`` and ``merge_normalizers``.

    Yields a dict with ``leaves`` (calls of ``online_normalizer``), ``merges`` (calls of
    ``merge_normalizers``) and ``depth`` (the longest chain of merges from a leaf to a result):
    a balanced tree over ``p`` parts has ``p`` leaves, ``p - 1`` merges and depth
    ``ceil(log2(p))``; merging the parts one after the other has depth ``p - 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxbook import merge_normalizers, online_normalizer
    >>> z = np.arange(8.0).reshape(1, 8)
    >>> with recording_merges(globals()) as rec:
    ...     pairs = [online_normalizer(p) for p in np.array_split(z, 4, axis=-1)]
    ...     left = merge_normalizers(*pairs[0], *pairs[1])
    ...     right = merge_normalizers(*pairs[2], *pairs[3])
    ...     m, d = merge_normalizers(*left, *right)
    >>> rec
    {'leaves': 4, 'merges': 3, 'depth': 2}
    """
    leaf, merge = original("online_normalizer"), original("merge_normalizers")
    stats = {"leaves": 0, "merges": 0, "depth": 0}
    depth_of, keep = {}, []           # keep: no id is reused while recording
    inside = []                       # merges made by online_normalizer itself do not count

    def leaf_recorded(*args, **kwargs):
        inside.append(True)
        try:
            m, d = leaf(*args, **kwargs)
        finally:
            inside.pop()
        stats["leaves"] += 1
        depth_of[id(m)] = 0
        keep.append(m)
        return m, d

    def merge_recorded(m1, d1, m2, d2):
        m, d = merge(m1, d1, m2, d2)
        if inside:
            return m, d
        depth = 1 + max(depth_of.get(id(m1), 0), depth_of.get(id(m2), 0))
        depth_of[id(m)] = depth
        keep.append(m)
        stats["merges"] += 1
        stats["depth"] = max(stats["depth"], depth)
        return m, d

    saved = _replace_everywhere(namespace, {leaf: leaf_recorded, merge: merge_recorded})
    try:
        yield stats
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
    for (module, name), helper in _HELPERS.items():
        if getattr(_MODULES[module], name, None) is not helper:
            raise AssertionError(
                f"{module}.{name} has been redefined; a test helper must stay NumPy's own "
                "(restart the kernel and run the notebook again)")
    import softmaxbook

    for name, function in _package_originals().items():
        if getattr(softmaxbook, name, None) is not function:
            raise AssertionError(
                f"softmaxbook.{name} has been redefined; the tests compare with the package's "
                "own functions (restart the kernel and run the notebook again)")


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
