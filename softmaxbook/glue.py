"""Glue numbers computed in a notebook into its prose (myst-nb), with a plain-Jupyter fallback.

The book's rule is that no number in the prose is typed by hand: a notebook
computes it, glues it under a name, and the text cites it with
``{glue:text}`name:.3f``` (myst-nb). This wrapper glues plain Python values
only (NumPy scalars render differently under NumPy 2) and still runs where
myst-nb is not installed, for example in a student's plain Jupyter, where
it does nothing.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["glue"]


def glue(name, value, display=False):
    """Glue ``value`` under ``name`` for the book's prose.

    Parameters
    ----------
    name : str
        The name the prose cites (``{glue:text}`name```).
    value : int, float, str or sympy expression
        NumPy scalars are converted to the Python ``int``/``float``/``bool`` they hold.
    display : bool, optional
        Also show the value in the cell's output (default: no).

    Returns
    -------
    None, so that a cell ending with a glue shows no stray output (a NumPy scalar or a
    float printed as math under the cell's other output).

    Raises
    ------
    TypeError
        For a name that is not a string, or a NumPy array (glue one number at a time).

    Examples
    --------
    >>> import numpy as np
    >>> glue("example", np.float64(0.25))   # returns nothing: no stray output in a cell
    >>> glue("example", np.ones(2))
    Traceback (most recent call last):
    ...
    TypeError: glue one number at a time, not an array (got shape (2,) for 'example')
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {name!r}")
    if isinstance(value, np.ndarray):
        raise TypeError(f"glue one number at a time, not an array (got shape {value.shape} for {name!r})")
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)
    try:
        from IPython import get_ipython
        from myst_nb import glue as _glue
    except ImportError:
        return None
    if get_ipython() is None:          # plain Python (tests, scripts)
        return None
    _glue(name, value, display=display)
    return None
