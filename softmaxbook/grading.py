"""Helpers for the autograded exercises: a student's answer may not call the book's own solution.

An exercise such as "write a stable softmax" is meaningless if the answer may simply call
:func:`softmaxbook.softmax`. The test cells run the student's function inside
:func:`forbidden`, which replaces the named package functions (wherever the package and the
notebook hold them) by stand-ins that fail with a message saying what is not allowed.
"""

from __future__ import annotations

import contextlib
import sys

__all__ = ["forbidden", "SOFTMAX_FAMILY"]

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
