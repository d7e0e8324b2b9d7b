"""Make student versions of the chapter notebooks: exercises kept, solutions removed.

For each notebook in ``notebooks/`` it writes a copy to the output folder (default
``_build/student``) in which

* the code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` in cells marked as nbgrader
  solution cells is replaced by ``raise NotImplementedError()`` (nbgrader's own convention), so
  the graded test cells that follow fail until the student writes the code;
* ``{solution}`` blocks and the markdown of ``{solution-start}`` / ``{solution-end}`` pairs are
  removed, keeping the ``{exercise}`` statements;
* the hidden tests of a graded cell (between ``### BEGIN HIDDEN TESTS`` and
  ``### END HIDDEN TESTS``) are removed, as nbgrader does on release;
* cells tagged ``hide-input`` (the checks that follow a written solution) are removed.

The nbgrader metadata is kept, so the student versions can also be managed with nbgrader.
Usage: ``python tools/make_student.py [OUTPUT_DIR]`` (``make student``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_CODE = re.compile(r"([ \t]*)### BEGIN SOLUTION\n.*?### END SOLUTION[ \t]*\n?", re.S)
HIDDEN_TESTS = re.compile(r"[ \t]*### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS[ \t]*\n?", re.S)
SOLUTION_BLOCK = re.compile(r"```\{solution\}[^\n]*\n.*?\n```[ \t]*\n?", re.S)


def is_solution_code(cell):
    return cell.cell_type == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("solution", False)


def strip_notebook(nb):
    """Return a student copy of the notebook ``nb`` (not modified)."""
    nb = nbformat.from_dict(nb)
    cells, inside_solution = [], False
    for cell in nb.cells:
        src = cell.source
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "markdown" and "{solution-start}" in src:
            inside_solution = True
            before = SOLUTION_BLOCK.sub("", src[:src.index("```{solution-start}")]).rstrip()
            if before:                  # the exercise statement shares the cell with the solution
                cell.source = before + "\n"
                cells.append(cell)
            continue
        if cell.cell_type == "markdown" and "{solution-end}" in src:
            inside_solution = False
            continue
        if is_solution_code(cell):
            cell.source = SOLUTION_CODE.sub(lambda m: f"{m.group(1)}# YOUR CODE HERE\n{m.group(1)}raise NotImplementedError()\n", src)
            cells.append(cell)
            continue
        if cell.cell_type == "code" and "### BEGIN HIDDEN TESTS" in src:
            cell.source = HIDDEN_TESTS.sub("", src)
        if inside_solution:
            continue            # solution text between solution-start and solution-end
        if "hide-input" in tags:
            continue
        if cell.cell_type == "markdown":
            cell.source = SOLUTION_BLOCK.sub("", src).rstrip() + "\n"
        cells.append(cell)
    nb.cells = cells
    return nb


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out_dir = Path(argv[0]) if argv else ROOT / "_build" / "student"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = strip_notebook(nbformat.read(path, as_version=4))
        nbformat.validate(nb)
        nbformat.write(nb, out_dir / path.name)
        written.append(out_dir / path.name)
    print(f"wrote {len(written)} student notebooks to {out_dir}")
    return written


if __name__ == "__main__":
    main()
