"""One plotting style for every figure of the book.

Colours are the Okabe–Ito palette, which stays distinguishable under the
common forms of colour blindness; line styles differ too, so that figures also
read in grey-scale print. Fonts are large enough for a phone screen.
"""

from __future__ import annotations

import matplotlib as mpl
from cycler import cycler

__all__ = ["OKABE_ITO", "LINESTYLES", "use_book_style", "BOOK_RC"]

#: The Okabe–Ito colour-blind-safe palette (black left out: it is the text colour).
OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
)

#: Line styles paired with the colours, for grey-scale readers.
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 1)))

BOOK_RC = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "figure.constrained_layout.use": True,
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "legend.fontsize": 11,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "lines.linewidth": 2.2,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=list(OKABE_ITO)) + cycler(linestyle=list(LINESTYLES)),
    "image.cmap": "viridis",
}


def use_book_style():
    """Apply the book's matplotlib style to every later figure.

    Examples
    --------
    >>> import matplotlib as mpl
    >>> use_book_style()
    >>> mpl.rcParams["axes.prop_cycle"].by_key()["color"][0]
    '#0072B2'
    """
    mpl.rcParams.update(BOOK_RC)
