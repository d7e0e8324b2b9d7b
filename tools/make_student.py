"""Make student versions of the chapter notebooks: exercises kept, every solution removed.

For each notebook in ``notebooks/`` it writes a copy to the output folder (default
``_build/student``) in which

* a first cell says what to install to run the notebook outside the book's repository;
* the Markdown is plain Markdown (``tools/plain_markdown.py``): glued numbers are replaced by
  their values from the book's own execution, citations, terms and cross-references by their
  text, exercises by headings and admonitions by bold titles, so it renders in any Jupyter;
* ``{solution}`` blocks and everything between ``{solution-start}`` and ``{solution-end}``
  (worked solutions and the cells that check them) are removed;
* every written exercise gets an answer cell (``YOUR ANSWER HERE``) carrying nbgrader's
  metadata for a manually graded answer, worth the points of ``tools/rubrics.yml``;
* the code of each coding exercise between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
  is replaced by ``raise NotImplementedError()`` (nbgrader's own convention), so the graded
  test cell that follows fails until the student writes the code;
* the hidden tests of a graded cell (between ``### BEGIN HIDDEN TESTS`` and
  ``### END HIDDEN TESTS``) are removed, as nbgrader does on release.

The glued values come from ``_build/jupyter_execute``, so the book must be built first
(``make student`` does it). ``tools/make_course.py`` builds the nbgrader course from the same
conversion, keeping the solutions in nbgrader's regions for nbgrader to remove.
Usage: ``python tools/make_student.py [OUTPUT_DIR]`` (``make student``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_markdown import EXECUTED, PlainMarkdown, executed_glue, split_solutions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_CODE = re.compile(r"([ \t]*)### BEGIN SOLUTION\n.*?### END SOLUTION[ \t]*\n?", re.S)
HIDDEN_TESTS = re.compile(r"[ \t]*### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS[ \t]*\n?", re.S)
RUBRICS = yaml.safe_load((Path(__file__).resolve().parent / "rubrics.yml").read_text())
ANSWER_STUB = "YOUR ANSWER HERE"

SETUP_TEXT = """\
**Running this notebook.** This is the student version of chapter {chapter} of *Softmax from
First Principles*: the chapter in full, with the exercises but without their solutions. It needs
Python 3.11 or later and the book's package `softmaxbook`.

* In the book's repository, `make lab` installs everything and opens JupyterLab.
* Anywhere else, take the **course bundle** (`softmaxbook-course.zip`, offered on the book's
  website), unzip it, and in its folder run, once:

  ```
  python -m pip install -r requirements.txt
  ```

  This installs the package (the wheel in the bundle, with the data the chapters read) and the
  exact versions of NumPy, SciPy, SymPy, Matplotlib, scikit-learn, mpmath, numba and JupyterLab
  that the book is tested with. Then open this notebook from that folder.
* In Colab, upload this notebook and the wheel `{wheel}` from the bundle, run
  `%pip install {wheel}` in a first cell, then restart the runtime (Colab's own NumPy and
  friends may be upgraded; the versions are not pinned there).

Each exercise's coding cell raises `NotImplementedError` until you replace it with your code;
the cell after it tests your answer (when graded, further hidden tests run too). Written
exercises have an answer cell below them, and a code cell too where they ask for a computation.
"""

COURSE_SETUP_TEXT = """\
**This is an assignment** of a course on *Softmax from First Principles*, chapter {chapter}: the
chapter in full, with its exercises to answer. Work in this notebook and submit it as it is: do
not rename it and do not delete, split or reorder its cells (the locked ones are restored before
grading). The environment of the course has everything installed.

* A coding exercise: replace `raise NotImplementedError()` in the cell under the exercise with
  your code; the next cell tests it, and when the assignment is graded hidden tests run too.
* A written exercise (a derivation or a question): answer in the Markdown cell under it; where
  the exercise asks for a computation (a SymPy check, a measurement), do it in the code cell
  that follows. These are graded by hand, against a rubric.
"""


def is_solution_code(cell):
    return cell["cell_type"] == "code" and \
        cell.get("metadata", {}).get("nbgrader", {}).get("solution", False)


def answer_cell(label, source):
    """A Markdown cell for the answer to the written exercise ``label``, manually graded."""
    points = RUBRICS[label]["points"]
    cell = nbformat.v4.new_markdown_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "solution": True, "locked": False,
                                 "points": points, "grade_id": f"{label}-answer",
                                 "schema_version": 3, "task": False}
    return cell


def wheel_name():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return f"{project['name']}-{project['version']}-py3-none-any.whl"


CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()\n"


def code_answer_cell(label, checks, course):
    """A code cell for the computation a written exercise asks for (a SymPy check, a
    measurement): the worked check in the course source, nbgrader's stub elsewhere. It is an
    nbgrader solution cell without tests; the grader reads it with the written answer."""
    body = "\n\n".join(c.source.strip() for c in checks)
    source = (f"### BEGIN SOLUTION\n{body}\n### END SOLUTION\n" if course else CODE_STUB)
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False,
                                 "grade_id": f"{label}-computation", "schema_version": 3,
                                 "task": False}
    return cell


def caption_cell(md, cell, number):
    """The caption of a figure, as a Markdown cell under it (Jupyter does not show a cell's
    metadata, where the book keeps it)."""
    caption = cell.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("caption")
    if not caption:
        return None
    return nbformat.v4.new_markdown_cell(f"*Figure {number}.* {md.convert(caption)}")


def convert_notebook(nb, name, glue, *, course=False):
    """Return the student (``course=False``) or nbgrader source (``course=True``) version of the
    chapter notebook ``nb`` (not modified); ``glue`` holds its executed glued values.

    The course version keeps the code solutions between ``### BEGIN SOLUTION`` and
    ``### END SOLUTION``, the hidden tests, and the worked solutions of written exercises in
    their answer cells: ``nbgrader generate_assignment`` removes them all. Its other code cells
    are locked (nbgrader restores them before grading), so that a test cannot be fooled by an
    edited helper.
    """
    nb = nbformat.from_dict(nb)
    chapter = int(name[:2])
    md = PlainMarkdown(glue, notebook=name)
    kept, solutions = split_solutions(nb.cells)
    missing = [lab for lab in RUBRICS if lab.startswith(f"ex-{chapter}-")
               and lab not in solutions]
    if missing:
        raise ValueError(f"{name}: rubrics.yml names exercises without a solution: {missing}")
    setup = COURSE_SETUP_TEXT if course else SETUP_TEXT
    cells = [nbformat.v4.new_markdown_cell(setup.format(chapter=chapter, wheel=wheel_name()))]
    figures = 0
    for cell, label in kept:
        cell = nbformat.from_dict(cell)
        if cell.cell_type == "markdown":
            cell.source = md.convert(cell.source)
            cells.append(cell)
        else:
            if not course and "### BEGIN HIDDEN TESTS" in cell.source:
                cell.source = HIDDEN_TESTS.sub("", cell.source)
            cell.outputs, cell.execution_count = [], None
            if course and "nbgrader" not in cell.metadata:
                cell.metadata["nbgrader"] = {"grade": False, "solution": False,
                                             "locked": True, "schema_version": 3,
                                             "grade_id": f"chapter-cell-{len(cells)}",
                                             "task": False}
            cells.append(cell)
            caption = caption_cell(md, cell, f"{chapter}.{figures + 1}")
            if caption is not None:
                figures += 1
                cells.append(caption)
        if label is None:
            continue
        text, code = solutions[label]
        graded = [nbformat.from_dict(c) for c in code if is_solution_code(c)]
        if graded:
            for c in graded:
                if not course:
                    c.source = SOLUTION_CODE.sub(
                        lambda m: f"{m.group(1)}# YOUR CODE HERE\n"
                                  f"{m.group(1)}raise NotImplementedError()\n", c.source)
                c.outputs, c.execution_count = [], None
                cells.append(c)
        elif label in RUBRICS:
            cells.append(answer_cell(label, md.convert(text) if course else ANSWER_STUB))
            checks = [nbformat.from_dict(c) for c in code if c["cell_type"] == "code"]
            if checks:
                cells.append(code_answer_cell(label, checks, course))
        else:
            raise ValueError(f"{name}: written exercise {label} has no rubric in rubrics.yml")
    references = md.references_markdown()
    if references:
        cells.append(nbformat.v4.new_markdown_cell(references))
    nb.cells = cells
    return nb


def main(argv=None, executed_dir=EXECUTED):
    argv = sys.argv[1:] if argv is None else argv
    out_dir = Path(argv[0]) if argv else ROOT / "_build" / "student"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        glue = executed_glue(path.stem, executed_dir)
        nb = convert_notebook(nbformat.read(path, as_version=4), path.name, glue)
        nbformat.validate(nb)
        nbformat.write(nb, out_dir / path.name)
        written.append(out_dir / path.name)
    print(f"wrote {len(written)} student notebooks to {out_dir}")
    return written


if __name__ == "__main__":
    main()
