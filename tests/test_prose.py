"""No hand-typed results in the prose: every computed number is glued from the computation.

The book's rule (DESIGN section 5): a number that a notebook computes appears in its markdown,
captions and solutions only through myst-nb's glue roles (``{glue:text}`name:.3f```). This test
reads every markdown cell and every figure caption of every chapter, removes what may hold
numbers legitimately (glue roles, code spans, citations and other roles, URLs, directive lines),
and flags what is left:

* in prose: any decimal number (``0.8417``, ``2.5``) and any integer with three or more
  significant digits (``1797``; ``1000`` has one);
* inside math: decimals with three or more significant digits (``0.659``); a formula that
  defines something (``e^{-1}``, ``\\tfrac12``, ``K = 3``) passes.

What remains is listed in ``ALLOWED`` with the reason it is not a result (a year, a constant of
nature with its source, a definitional input such as the logits of a worked example). An entry
that no longer matches anything fails too, so the list cannot go stale.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))

GLUE = re.compile(r"\{glue(?::\w+)?\}`[^`]*`")
ROLE = re.compile(r"\{(?:cite|cite:\w+|doc|ref|numref|term|eq|download)\}`[^`]*`")
CODE = re.compile(r"``.*?``|`[^`]*`", re.S)
DISPLAY = re.compile(r"\$\$.*?\$\$", re.S)
INLINE = re.compile(r"\$[^$\n]+\$")
URL = re.compile(r"https?://\S+")
DIRECTIVE = re.compile(r"^\s*(?:```|:::)\{?[\w-]*\}?.*$|^\s*:[\w-]+:.*$|^\(\w[\w-]*\)=\s*$", re.M)
NUMBER = re.compile(r"(?<![\w.\-])(\d+(?:\.\d+)?)(?![\w.]*\w)")

#: (chapter file prefix, number as written, reason). Each must match at least once.
ALLOWED: list[tuple[str, str, str]] = [
    ("11_", "2.1", "a software version: FlashAttention 2.1 changed the causal alignment"),
]


def significant_digits(text):
    """``(digits, is_decimal)`` of a number as written: ``0.0450`` -> (3, True), ``4096`` -> (4, False)."""
    if "." in text:
        return len(text.replace(".", "").lstrip("0")), True
    return len(text.lstrip("0").rstrip("0")), False


def hand_typed(text, in_math):
    """The numbers in ``text`` that look like typed results."""
    found = []
    for m in NUMBER.finditer(text):
        digits, decimal = significant_digits(m.group(1))
        if (decimal and digits >= 3) if in_math else (decimal or digits >= 3):
            found.append(m.group(1))
    return found


def prose_texts(nb):
    """Markdown cells and figure captions of a notebook, as strings."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            yield "".join(cell["source"])
        caption = cell.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("caption")
        if caption:
            yield caption
        caption = cell.get("metadata", {}).get("caption")
        if caption:
            yield caption


def offences(nb):
    found = []
    for text in prose_texts(nb):
        for pattern in (GLUE, ROLE, URL, DIRECTIVE, CODE):
            text = pattern.sub(" ", text)
        maths = DISPLAY.findall(text)
        text = DISPLAY.sub(" ", text)
        maths += INLINE.findall(text)
        prose = INLINE.sub(" ", text)
        found += hand_typed(prose, in_math=False)
        for m in maths:
            found += hand_typed(m, in_math=True)
    return found


def test_the_scanner_finds_typed_results_and_passes_glue_and_definitions():
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": [
        "The loss is 0.8417 on 1797 images; {glue:text}`acc:.3f` is glued, `lr=0.5` is code, ",
        "$e^{-1}$ and $K = 3$ define, $p = 0.659$ is a result, in 1000 steps {cite}`bridle1990`."]}]}
    assert sorted(offences(nb)) == ["0.659", "0.8417", "1797"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_hand_typed_numbers(path):
    nb = json.loads(path.read_text())
    allowed = Counter(n for prefix, n, _ in ALLOWED if path.name.startswith(prefix))
    found = Counter(offences(nb))
    extra = found - allowed
    assert not extra, (f"{path.name}: numbers typed into the prose (glue them from the computation, "
                       f"or add them to ALLOWED with a reason): {sorted(extra.elements())}")
    stale = allowed - found
    assert not stale, f"{path.name}: ALLOWED entries that match nothing any more: {sorted(stale)}"
