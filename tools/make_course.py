"""Write a ready nbgrader course for the book: ``make course`` (after ``make book``).

Output (default ``_build/course``)::

    nbgrader_config.py         the course's configuration (root, course id, timeouts)
    README.md                  instructor notes: the commands, every exercise with its points
                               and, for the written ones, the grading rubric
    source/chNN/<chapter>.ipynb  one assignment per chapter, in nbgrader's source format

Each source notebook is the chapter converted to plain Markdown (``tools/make_student.py``) with
its solutions kept where nbgrader removes them on ``generate_assignment``: the code between
``### BEGIN SOLUTION`` and ``### END SOLUTION``, the hidden tests, and the worked solution of
each written exercise as the content of its manually graded answer cell (nbgrader replaces it by
"YOUR ANSWER HERE"). Worked solutions of coding exercises and the cells that check written
solutions are not in the course at all. ``tests/test_course.py`` runs the real nbgrader on it.

Usage: ``python tools/make_course.py [OUTPUT_DIR] [--chapters 1,3,10]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_student import RUBRICS, convert_notebook  # noqa: E402
from plain_markdown import EXECUTED, executed_glue  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COURSE_ID = "softmax-first-principles"

CONFIG = '''\
"""nbgrader configuration of the course 'Softmax from First Principles' (made by make course)."""
from pathlib import Path

c = get_config()  # noqa: F821  (nbgrader provides it)
c.CourseDirectory.root = str(Path(__file__).resolve().parent)
c.CourseDirectory.course_id = "{course_id}"
# Every chapter runs in seconds; a student's infinite loop should not hold the grader.
c.ExecutePreprocessor.timeout = 300
# Where released assignments are exchanged; change it for a shared JupyterHub.
c.Exchange.root = str(Path(__file__).resolve().parent / "exchange")
'''


def assignment_name(path):
    return f"ch{int(path.name[:2]):02d}"


def exercises(nb):
    """(grade_id, points, kind) of every graded cell of a course notebook, in order."""
    rows = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            kind = "written" if cell.cell_type == "markdown" else "coding"
            rows.append((meta["grade_id"], meta["points"], kind))
    return rows


def readme(table):
    lines = [
        "# Softmax from First Principles: the nbgrader course",
        "",
        "Made by `make course` from the book's chapters. One assignment per chapter",
        "(`source/chNN`). In this folder:",
        "",
        "```",
        "nbgrader generate_assignment ch03      # release/ch03: solutions and hidden tests removed",
        "nbgrader release_assignment ch03       # to the exchange folder (see nbgrader_config.py)",
        "nbgrader collect ch03                  # after students submit",
        "nbgrader autograde ch03                # runs the tests, hidden ones included",
        "```",
        "",
        "The written answers are graded in the Formgrader (JupyterLab: Nbgrader, Formgrader, with",
        "the nbgrader extension the book's requirements install; there is no `nbgrader formgrade`",
        "command in nbgrader 0.9). Code cells other than the answers are locked: nbgrader",
        "restores them before autograding, so a student cannot change a helper a test relies on.",
        "",
        "The grading environment, and the students' if they work outside a hub, need the book's",
        "package: `python -m pip install -r requirements.txt` in the course bundle",
        "(`softmaxbook-course.zip` on the book's website, or `_build/html/` after `make book`).",
        "Students fetch and submit with `nbgrader fetch_assignment` / `submit`, with the same",
        "`course_id` and an exchange folder they can write to (`c.Exchange.root` in",
        "`nbgrader_config.py`).",
        "",
        "Coding exercises are graded automatically; their tests compare with independent",
        "computations, fail with a message that says what is wrong, cannot be passed by",
        "redefining NumPy's test helpers or by calling the package's own version of the function",
        "asked for, and include hidden tests. Written exercises (derivations and conceptual",
        "questions) have a manually graded answer cell; their rubrics follow.",
        "",
        "Each coding exercise has two grade cells: its visible tests and its hidden tests (1 point,",
        "2 for a 5-point exercise), so that a student whose visible tests pass is not misled.",
        "",
        "| assignment | exercise | kind | points |",
        "|---|---|---|---|",
    ]
    for assignment, label, kind, points in table:
        lines.append(f"| {assignment} | {label} | {kind} | {points} |")
    lines += ["", "## Rubrics of the written exercises", ""]
    for assignment, label, kind, points in table:
        if kind == "coding":
            continue
        entry = RUBRICS[label]
        lines.append(f"### {label} ({entry['kind']}, {points} points)")
        lines.append("")
        for pts, text in entry["rubric"]:
            lines.append(f"* **{pts}** {text}")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None, executed_dir=EXECUTED):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", nargs="?", type=Path, default=ROOT / "_build" / "course")
    parser.add_argument("--chapters", default="",
                        help="comma-separated chapter numbers (default: all)")
    args = parser.parse_args(argv)
    wanted = {int(x) for x in args.chapters.split(",") if x.strip()}
    out = args.output
    if (out / "source").exists():
        shutil.rmtree(out / "source")
    (out / "source").mkdir(parents=True)
    (out / "nbgrader_config.py").write_text(CONFIG.format(course_id=COURSE_ID))
    table = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        if wanted and int(path.name[:2]) not in wanted:
            continue
        nb = convert_notebook(nbformat.read(path, as_version=4), path.name,
                              executed_glue(path.stem, executed_dir), course=True)
        nbformat.validate(nb)
        folder = out / "source" / assignment_name(path)
        folder.mkdir()
        nbformat.write(nb, folder / path.name)
        rows = {}                       # one row per exercise: its grade cells' points added
        for grade_id, points, kind in exercises(nb):
            label = (grade_id.removesuffix("-answer") if kind == "written" else
                     grade_id.removesuffix("-hidden-tests").removesuffix("-tests"))
            rows[label] = (kind, rows.get(label, (kind, 0))[1] + points)
        for label, (kind, points) in rows.items():
            table.append((assignment_name(path), label, kind, points))
    (out / "README.md").write_text(readme(table))
    print(f"wrote the nbgrader course ({len(table)} graded exercises) to {out}")
    return out


if __name__ == "__main__":
    main()
