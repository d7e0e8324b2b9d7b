"""Input checking shared by every public function of :mod:`softmaxbook`."""

from __future__ import annotations

import operator

import numpy as np

try:  # NumPy >= 2.0
    from numpy.lib.array_utils import normalize_axis_index
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import normalize_axis_index

#: Extended precision is used for float64 work where the platform has it
#: (x87 80-bit ``long double`` on x86-64 Linux: 64 significant bits).
HAS_EXTENDED = np.finfo(np.longdouble).nmant >= 63


def as_real_array(z, name="z", native=True):
    """Return ``z`` as a real floating NumPy array, never a view that we modify.

    Floating arrays keep their dtype; integer and boolean arrays become float64;
    anything else raises :class:`TypeError` naming the problem. With
    ``native=False`` a floating array in non-native byte order is returned as it
    is (the row functions convert it block by block, without a full copy).
    """
    if isinstance(z, (str, bytes)):
        raise TypeError(f"{name} must be an array of real numbers, got a string: {z!r}")
    try:
        a = np.asarray(z)
    except ValueError as exc:  # ragged nested sequences
        raise TypeError(
            f"{name} must be a rectangular array of real numbers; "
            f"NumPy could not make an array of it ({exc})"
        ) from None
    kind = a.dtype.kind
    if kind == "f":
        if native and not a.dtype.isnative:
            # Non-native byte order ('>f8' on a little-endian machine): compute on a
            # native copy, or NumPy's fast loops (and our dtype dispatch) are bypassed.
            # The functions convert their result back to the caller's dtype.
            return a.astype(a.dtype.newbyteorder("="))
        return a
    if kind in "biu":
        return a.astype(np.float64)
    raise TypeError(
        f"{name} must hold real numbers (float, int or bool), got dtype {a.dtype} "
        f"({'complex' if kind == 'c' else 'non-numeric'} values are not supported)"
    )


def real_array_and_dtype(z, name="z"):
    """``(a, dtype)``: ``z`` as by :func:`as_real_array`, and the dtype results keep.

    ``dtype`` is the caller's floating dtype, byte order included (``a`` itself
    is always in native byte order), or float64 for integer and boolean input.
    """
    a = as_real_array(z, name, native=False)
    dtype = a.dtype
    if not dtype.isnative:
        a = a.astype(dtype.newbyteorder("="))
    return a, dtype


def real_array_no_copy(z, name="z"):
    """``(a, dtype, native)``: ``z`` as a real array, not converted to native byte order.

    ``dtype`` is the dtype of the result (the caller's floating dtype, byte order
    included, or float64 for integers and booleans) and ``native`` the same dtype in
    native byte order, which the computation uses.
    """
    a = as_real_array(z, name, native=False)
    return a, a.dtype, a.dtype.newbyteorder("=")


def check_axis(axis, ndim):
    """Normalise ``axis`` for an array of ``ndim`` dimensions.

    Raises :class:`TypeError` for a non-integer axis and NumPy's
    :class:`numpy.exceptions.AxisError` for one out of range.
    """
    if isinstance(axis, bool):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(
            f"axis must be a single integer, got {axis!r} (softmax normalises along one axis)"
        ) from None
    if not -ndim <= axis < ndim:   # also catches axes too large for a C long
        raise np.exceptions.AxisError(
            f"axis {axis} is out of bounds for an array of dimension {ndim}"
        )
    return normalize_axis_index(axis, ndim)


def working_dtype(dtype):
    """The precision the computation is carried out in, for input ``dtype``.

    float16 and float32 are computed in float64; float64 in extended precision
    where the platform has it; longdouble in itself.
    """
    dtype = np.dtype(dtype)
    if dtype == np.longdouble:
        return np.dtype(np.longdouble)
    if dtype == np.float64:
        return np.dtype(np.longdouble if HAS_EXTENDED else np.float64)
    return np.dtype(np.float64)


def check_temperature(temperature):
    """Return ``temperature`` as a positive finite float, or raise ``ValueError``."""
    if isinstance(temperature, (bool, np.bool_)) or not isinstance(
        temperature, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"temperature must be a real number, got {temperature!r}")
    try:
        t = float(temperature)
    except OverflowError:   # an int beyond the float range, e.g. 10**400
        raise ValueError(
            f"temperature must be positive and finite, got {temperature!r} "
            "(too large for a float)"
        ) from None
    if t == 0 and temperature > 0:    # e.g. a longdouble 1e-4000
        raise ValueError(f"temperature must be a positive float64, got {temperature!r}, "
                         "which is below the float64 range")
    if not (np.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be positive and finite, got {temperature!r}")
    return t


def sum_to_one_tolerance(dtype, k):
    """How far from 1 the sum of ``k`` probabilities stored in ``dtype`` may be.

    Rounding each probability to ``dtype`` moves the sum by at most one unit
    roundoff (relative errors of normal numbers add up to ``u * sum = u``),
    plus half the smallest subnormal for each entry that underflows; a
    softmax from another library may also sum in ``dtype`` itself, pairwise,
    which adds about ``log2(k)`` roundoffs. The tolerance allows four eps for
    each of those ``1 + log2(k)`` steps and never less than ``1e-6``:
    ``1e-6`` for float64, about ``5e-6`` for float32 with ``k = 1000`` and
    ``0.04`` for float16, where a row of float16 probabilities that sums to
    1.1 is therefore still refused.
    """
    info = np.finfo(dtype)
    steps = 1.0 + np.log2(max(int(k), 1))
    return (max(1e-6, 4.0 * float(info.eps) * steps)
            + int(k) * float(info.smallest_subnormal))


def check_labels(labels, logits_shape, logits_name="logits", name="labels"):
    """Validate integer class labels for logits of shape ``(..., K)``.

    Returns the labels as an integer array of shape ``logits_shape[:-1]``.
    Raises :class:`TypeError` for non-integer labels, :class:`ValueError` for a
    shape that does not match, and :class:`IndexError` naming the first label
    outside ``0 .. K-1`` (negative labels included: NumPy would silently read
    them from the end).
    """
    if isinstance(labels, (str, bytes)):
        raise TypeError(f"labels must be integer class indices, got a string: {labels!r}")
    try:
        y = np.asarray(labels)
    except ValueError as exc:
        raise TypeError(f"labels must be a rectangular array of integers ({exc})") from None
    if y.dtype.kind not in "iu":
        what = "boolean" if y.dtype.kind == "b" else str(y.dtype)
        hint = ""
        if y.dtype.kind == "f":
            hint = (" (convert with labels.astype(int) if they are whole numbers; "
                    "probability targets need the logits' shape "
                    f"{tuple(logits_shape)} and are accepted by the loss functions)")
        raise TypeError(f"labels must be integer class indices, got {what} labels{hint}")
    expected = tuple(logits_shape[:-1])
    if y.shape != expected:
        raise ValueError(
            f"{name} have shape {y.shape}, but {logits_name} of shape {tuple(logits_shape)} "
            f"need one label per row, i.e. {name} of shape {expected}"
        )
    K = logits_shape[-1]
    if K == 0 and y.size:
        raise IndexError(f"{logits_name} have no classes (K = 0), so no label can be valid")
    bad = (y < 0) | (y >= K)
    if np.any(bad):
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise IndexError(
            f"label {int(y[pos])} at position {pos if len(pos) != 1 else pos[0]} is out of range "
            f"for K = {K} classes (labels must be in 0..{K - 1}; negative labels are not allowed)"
        )
    return y.astype(np.intp, copy=False)


def check_number(value, name, *, low=None, strict=False, integer=False):
    """Validate a scalar setting; return it as a Python ``float`` (``int`` if ``integer``).

    Raises :class:`TypeError` naming ``name`` for anything that is not a real
    number (booleans, strings, ``None``, arrays; non-integers if ``integer``),
    and :class:`ValueError` for NaN, infinity, or a value below ``low`` (or
    equal to it if ``strict``).
    """
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kinds):
        what = "an integer" if integer else "a real number"
        raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    if integer:
        v = int(value)
    else:
        try:
            v = float(value)
        except OverflowError:
            raise ValueError(f"{name} must be finite, got {value!r}") from None
        if not np.isfinite(v):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (v < low or (strict and v == low)):
        if integer and low == 1:
            bound = "a positive integer"
        elif low == 0:
            bound = "a positive number" if strict else "a non-negative number"
        else:
            bound = f"> {low}" if strict else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return v


def check_finite(a, name):
    """Raise :class:`ValueError` naming ``name`` if the array ``a`` holds NaN or infinity."""
    if a.size and not np.all(np.isfinite(a)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise ValueError(f"{name} must be finite, but {name}[{', '.join(map(str, bad))}] is "
                         f"{a[bad]!r}")
