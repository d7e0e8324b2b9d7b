"""One plotting style for every figure of the book.

Colours are the Okabe–Ito palette, which stays distinguishable under the
common forms of colour blindness; line styles differ too, so that figures also
read in grey-scale print. Fonts are large enough for a phone screen.
"""

from __future__ import annotations

import os

import matplotlib as mpl
from cycler import cycler

__all__ = ["OKABE_ITO", "LINESTYLES", "use_book_style", "BOOK_RC", "displayed_text_px",
           "check_legible", "check_styles", "COLUMN_PX", "MIN_TEXT_PX", "PHONE_COLUMN_PX",
           "MIN_PHONE_TEXT_PX", "Slider"]

#: Width, in CSS pixels, of the book's text column at a 1280-px window: a wider figure is
#: scaled down to it (measured in the browser test's pages).
COLUMN_PX = 672
#: The smallest text, in CSS pixels, that a figure may show where it is displayed.
MIN_TEXT_PX = 9.0
#: Width, in CSS pixels, of the text column on a 412-px-wide phone (measured likewise).
PHONE_COLUMN_PX = 364
#: The smallest text a figure may show on that phone, whose screen has 2.6 device
#: pixels per CSS pixel, so 7 px are 18 device pixels.
MIN_PHONE_TEXT_PX = 7.0

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
    "font.size": 13,
    "axes.titlesize": 13,
    "axes.labelsize": 13,
    "legend.fontsize": 12,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "lines.linewidth": 2.2,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=list(OKABE_ITO)) + cycler(linestyle=list(LINESTYLES)),
    "image.cmap": "viridis",
}


def displayed_text_px(fig, column_px=COLUMN_PX):
    """The size, in CSS pixels, of every visible text of ``fig`` where the book shows it.

    The notebook displays the figure as a PNG of its tight bounding box at ``fig.dpi``; the
    page scales it down to the text column when it is wider. Returns ``(size, text)`` pairs,
    smallest first.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    >>> _ = ax.set_title("big", fontsize=12)
    >>> _ = ax.text(0.5, 0.5, "tiny", fontsize=4)
    >>> size, text = displayed_text_px(fig)[0]
    >>> text, round(size, 1)     # 4 pt at 110 dpi, shown at its natural width or less
    ('tiny', 6.1)
    >>> plt.close(fig)
    """
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    natural = fig.get_tightbbox(renderer).width * fig.dpi
    scale = min(1.0, column_px / natural)
    sizes = []
    for t in fig.findobj(Text):
        if not (t.get_visible() and t.get_text().strip()):
            continue
        if t.axes is not None and not t.get_window_extent(renderer).overlaps(
                fig.bbox):                      # tick labels outside the view, for example
            continue
        sizes.append((t.get_fontsize() * fig.dpi / 72 * scale, t.get_text()))
    return sorted(sizes, key=lambda pair: pair[0])


def check_legible(fig, column_px=COLUMN_PX, min_px=MIN_TEXT_PX,
                  phone_px=PHONE_COLUMN_PX, min_phone_px=MIN_PHONE_TEXT_PX):
    """Raise ``AssertionError`` if ``fig`` shows text smaller than ``min_px`` CSS pixels in
    the desktop column, or smaller than ``min_phone_px`` in the phone's column.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(figsize=(11, 3), dpi=110)
    >>> _ = ax.set_xlabel("a label", fontsize=8)
    >>> check_legible(fig)
    Traceback (most recent call last):
    ...
    AssertionError: figure text 'a label' would show at 8.3 px (minimum 9.0 px) at 1280 px: enlarge the font or narrow the figure (11.0 in wide)
    >>> _ = ax.set_xlabel("a label", fontsize=13)  # large enough, but not the ticks on a phone
    >>> check_legible(fig)
    Traceback (most recent call last):
    ...
    AssertionError: figure text '0.0' would show at 5.6 px (minimum 7.0 px) on a 412-px phone: enlarge the font or narrow the figure (11.0 in wide)
    >>> plt.close(fig)
    """
    for column, least, where in ((column_px, min_px, "at 1280 px"),
                                 (phone_px, min_phone_px, "on a 412-px phone")):
        small = [(px, text) for px, text in displayed_text_px(fig, column) if px < least]
        if small:
            px, text = small[0]
            raise AssertionError(
                f"figure text {text[:40]!r} would show at {px:.1f} px (minimum {least} px) "
                f"{where}: enlarge the font or narrow the figure "
                f"({fig.get_figwidth():.1f} in wide)")


#: label -> style of every labelled curve, bar or marker drawn since use_book_style() (one
#: notebook): a concept keeps its colour and line style across a chapter.
_STYLES = {}


def _style_of(handle):
    """(colour, line style, marker, hatch) of a legend handle; a line has no hatch (None),
    a bar or area no marker (None)."""
    from matplotlib.colors import to_hex
    from matplotlib.container import Container
    from matplotlib.lines import Line2D

    if isinstance(handle, Container):
        handle = handle.patches[0] if hasattr(handle, "patches") else handle[0]
    if isinstance(handle, Line2D):
        return (to_hex(handle.get_color()), str(handle.get_linestyle()),
                str(handle.get_marker()), None)
    if hasattr(handle, "get_facecolor"):
        colour = handle.get_facecolor()
        if getattr(colour, "ndim", 1) == 2:          # a collection: its first member
            colour = colour[0] if len(colour) else (0, 0, 0, 0)
        ls = handle.get_linestyle()
        ls = ls[0] if isinstance(ls, list) else ls
        return (to_hex(colour), str(ls), None, handle.get_hatch())
    return (type(handle).__name__, None, None, None)


def _same_style(a, b):
    """A line and a bar of one concept share the colour; two lines or two bars share all."""
    kind_a, kind_b = a[3] is None and a[2] is not None, b[3] is None and b[2] is not None
    return a == b if kind_a == kind_b else a[0] == b[0]


def check_styles(fig, seen=None):
    """Raise ``AssertionError`` unless every concept has one style.

    A label drawn in ``fig`` must keep the colour, line style, marker and hatch it had in
    ``fig`` and in earlier figures (``seen``: label -> style, updated), and two labels of one
    plot (axes) must not look alike.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> seen = {}
    >>> fig, ax = plt.subplots()
    >>> _ = ax.plot([0, 1], color="C0", label="softmax")
    >>> check_styles(fig, seen)
    >>> fig2, ax2 = plt.subplots()
    >>> _ = ax2.plot([0, 1], color="C1", label="softmax")
    >>> check_styles(fig2, seen)
    Traceback (most recent call last):
    ...
    AssertionError: 'softmax' is drawn as ('#ff7f0e', '-', 'None', None) here but as ('#1f77b4', '-', 'None', None) before: one colour and line style per concept
    >>> plt.close("all")
    """
    seen = {} if seen is None else seen
    here = {}
    for ax in fig.axes:
        alike = {}
        for handle, label in zip(*ax.get_legend_handles_labels()):
            style = _style_of(handle)
            before = here.get(label, seen.get(label))
            if before is not None and not _same_style(before, style):
                raise AssertionError(
                    f"{label!r} is drawn as {style} here but as {before} before: "
                    "one colour and line style per concept")
            if alike.setdefault(style, label) != label:
                raise AssertionError(
                    f"{label!r} and {alike[style]!r} look alike in one plot ({style})")
            here[label] = style
    seen.update(here)


def check_open_figures():
    """:func:`check_legible` on every open figure (the ones a notebook cell is about to show)."""
    import matplotlib.pyplot as plt

    for num in plt.get_fignums():
        fig = plt.figure(num)
        log = os.environ.get("SOFTMAXBOOK_FIGURE_LOG")
        if log:                     # a record of every figure's smallest text, for authors
            with open(log, "a") as f:
                px, text = displayed_text_px(fig)[0]
                phone, _ = displayed_text_px(fig, PHONE_COLUMN_PX)[0]
                f.write(f"{fig.get_figwidth():.1f} in, smallest text {px:.1f} px "
                        f"(phone {phone:.1f} px): {text!r}\n")
        check_legible(fig)
        check_styles(fig, _STYLES)


class _CheckFiguresAtCellEnd:
    """An IPython AST transformer: every cell ends with :func:`check_open_figures`, and its
    last expression is still the value the cell displays."""

    def visit(self, module):
        import ast

        check = ast.parse("__import__('softmaxbook.plotting', fromlist=['check_open_figures'])"
                          ".check_open_figures()").body[0]
        body = list(module.body)
        if body and isinstance(body[-1], ast.Expr):
            last = body.pop()
            body += [ast.Assign(targets=[ast.Name("_book_last_value", ast.Store())],
                                value=last.value),
                     check, ast.Expr(ast.Name("_book_last_value", ast.Load()))]
        else:
            body.append(check)
        module.body = body
        return ast.fix_missing_locations(module)


def use_book_style(check_figures=True):
    """Apply the book's matplotlib style to every later figure.

    In a notebook, figures are shown as PNG and also kept as PDF, which the PDF edition of
    the book prints (vector graphics). Every cell that leaves a figure open checks it with
    :func:`check_legible`: a figure whose text would show below :data:`MIN_TEXT_PX` pixels in
    the book's column fails its cell (``check_figures=False`` turns this off).

    Examples
    --------
    >>> import matplotlib as mpl
    >>> use_book_style()
    >>> mpl.rcParams["axes.prop_cycle"].by_key()["color"][0]
    '#0072B2'
    """
    mpl.rcParams.update(BOOK_RC)
    _STYLES.clear()
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None:
        return
    try:        # PNG for the website, PDF (vector) for the printed book, which prefers it
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png", "pdf")
    except ImportError:
        pass
    if not check_figures:
        return
    if not any(isinstance(t, _CheckFiguresAtCellEnd) for t in ip.ast_transformers):
        ip.ast_transformers.append(_CheckFiguresAtCellEnd())
    import matplotlib.pyplot as plt

    if not getattr(plt.show, "_checks_figures", False):   # plt.show() displays and closes
        original = plt.show

        def show(*args, **kwargs):
            check_open_figures()
            return original(*args, **kwargs)

        show._checks_figures = True
        show.__doc__ = original.__doc__
        plt.show = show


#: matplotlib's slider buttons are Font Awesome icons from a CDN; the book's site loads nothing
#: from other hosts, so they become plain characters.
_ICONS = {
    "fa fa-minus": "\u2212", "fa fa-fast-backward": "\u21e4", "fa fa-step-backward": "\u2039",
    "fa fa-play fa-flip-horizontal": "\u25c0", "fa fa-pause": "\u2016",
    "fa fa-play": "\u25b6", "fa fa-step-forward": "\u203a", "fa fa-fast-forward": "\u21e5",
    "fa fa-plus": "+",
}


class Slider:
    """An animation as a self-contained HTML slider, for a notebook or the book's website.

    ``Slider(anim, fig, note)`` renders every frame of the matplotlib animation ``anim``
    (whose figure ``fig`` is then closed) into HTML and JavaScript with no request to any
    other host, the frames scaled to the text column. Builders that cannot show HTML (the
    PDF) print ``note`` instead, which should name the static figure that says the same.
    The figure is checked with :func:`check_legible` first.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from matplotlib.animation import FuncAnimation
    >>> fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
    >>> line, = ax.plot([0, 1], [0, 0])
    >>> anim = FuncAnimation(fig, lambda i: line.set_ydata([0, i]), frames=3)
    >>> html = Slider(anim, fig, "a line that tilts")._repr_mimebundle_()["text/html"]
    >>> "http" in html, "fa fa-" in html, 'type="range"' in html
    (False, False, True)
    """

    def __init__(self, anim, fig, note, fps=8):
        import re

        import matplotlib.pyplot as plt

        check_legible(fig)
        try:
            with mpl.rc_context({"savefig.dpi": fig.dpi}):
                html = anim.to_jshtml(fps=fps, default_mode="once")
        finally:
            plt.close(fig)
        html = re.sub(r"<link[^>]*font-awesome[^>]*>", "", html, flags=re.S)
        for icon, char in _ICONS.items():
            html = html.replace(f'<i class="{icon}"></i>', char)
        html = html.replace('<img id="_anim_img', '<img style="max-width: 100%" id="_anim_img')
        if "fa fa-" in html or re.search(r"""(src|href)=["']?https?:""", html):
            raise RuntimeError("the animation's HTML still refers to another host")
        self.html, self.note = html, note

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": self.html, "text/plain": self.note}
