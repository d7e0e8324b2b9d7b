"""The book's editions: provenance on every page, and the student edition of the PDF.

* Every build names its edition: the package version (``pyproject.toml``) and the date of the
  commit it was built from (``git log``; today's date outside a repository). The website shows
  it in the footer of every page; the PDF on its title page (Sphinx's ``release`` and ``today``).
* With ``student_edition`` set (``make pdf`` sets it, through the environment variable
  ``SOFTMAXBOOK_STUDENT_EDITION=1``, for the student PDF), the solutions are
  taken out of the document: every solution of ``sphinx-exercise`` (a ``{solution}`` directive,
  or everything between ``{solution-start}`` and ``{solution-end}``, code cells included) and the
  test cells of the coding exercises, which hold hidden tests. The exercise statements stay.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import tomllib
from pathlib import Path

from docutils import nodes
from sphinx.transforms import SphinxTransform

ROOT = Path(__file__).resolve().parents[2]


def edition():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    try:
        date = subprocess.run(["git", "log", "-1", "--format=%cs"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        date = ""
    return version, date or datetime.date.today().isoformat()


def set_edition(app, config):
    if os.environ.get("SOFTMAXBOOK_STUDENT_EDITION") == "1":     # make pdf's student build
        config.student_edition = True
    version, date = edition()
    config.version = config.release = version
    config.today = date
    options = dict(config.html_theme_options or {})
    label = "student edition" if config.student_edition else "edition"
    options["extra_footer"] = (f'<p class="book-edition">Softmax from First Principles, '
                               f"{label} {version} of {date}.</p>")
    config.html_theme_options = options


class RemoveSolutions(SphinxTransform):
    """Drop solutions and graded test cells (after sphinx-exercise has merged the gated
    solutions, priority 10)."""

    default_priority = 50

    def apply(self):
        if not self.config.student_edition:
            return
        from sphinx_exercise.nodes import solution_node

        for node in list(self.document.findall(solution_node)):
            node.parent.remove(node)
        for node in list(self.document.findall(nodes.container)):
            meta = node.get("cell_metadata") or {}
            if node.get("nb_element") == "cell_code" and meta.get("nbgrader", {}).get("grade"):
                node.parent.remove(node)


def _latex_exercise_labels(app):
    """sphinx-exercise labels an exercise in LaTeX as ``exercise:<label>``, while references
    from another document (the instructors' page, a later chapter) point to
    ``<docname>:<label>``: the PDF had them undefined. Emit both."""
    from sphinx_exercise import nodes as ex

    def visit(self, node):
        ex.visit_exercise_enumerable_node(self, node)
        if self.curfilestack:
            docname = self.curfilestack[-1]
            self.body.append(r"\phantomsection\label{\detokenize{%s:%s}}" %
                             (docname, node.attributes["label"]) + "\n")

    app.add_node(ex.exercise_enumerable_node, override=True,
                 latex=(visit, ex.depart_exercise_enumerable_node))


def _chapter_numbers(app):
    """Number exercises, figures and equations by chapter in the PDF as on the website
    ("Exercise 2.2", not sphinx-jupyterbook-latex's section-level "2.7.2")."""
    from sphinx.builders.latex import LaTeXBuilder

    if isinstance(app.builder, LaTeXBuilder):
        app.config["numfig_secnum_depth"] = 1


def setup(app):
    app.setup_extension("sphinx_exercise")
    app.connect("builder-inited", _chapter_numbers, priority=900)
    _latex_exercise_labels(app)
    app.add_config_value("student_edition", False, "env")
    app.connect("config-inited", set_edition)
    app.add_transform(RemoveSolutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
