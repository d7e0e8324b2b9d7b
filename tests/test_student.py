"""Student versions of the notebooks (tools/make_student.py): no solutions left, exercises kept,
plain Markdown that any Jupyter renders, and the graded tests fail on the stubs, as they must
until a student fills them in. The conversion takes the glued numbers from the book's build, so
these run with the site checks (-m site)."""

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from make_student import main as make_students  # noqa: E402

pytestmark = pytest.mark.site


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    return {p.name: nbformat.read(p, as_version=4) for p in make_students([str(out)])}


def test_no_solution_is_left_and_every_exercise_is(students):
    assert len(students) == len(list((ROOT / "notebooks").glob("*.ipynb")))
    for name, nb in students.items():
        original = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        orig_md = "\n".join(c.source for c in original.cells if c.cell_type == "markdown")
        assert "{solution" not in md and "BEGIN SOLUTION" not in code, name
        assert "HIDDEN TESTS" not in code and "hidden test" not in code, name
        # plain Markdown: no MyST role or directive left, numbers filled in
        assert not re.search(r"\{[a-z:\-]+\}`|```\{", md), name
        assert "pip install -r requirements.txt" in nb.cells[0].source, name
        answers = [c for c in nb.cells if c.cell_type == "markdown"
                   and c.get("metadata", {}).get("nbgrader", {}).get("solution")]
        assert all(c.source == "YOUR ANSWER HERE" for c in answers), name
        labels = re.findall(r":label: ex-(\d+)-(\d+)", orig_md)
        assert re.findall(r"^### Exercise (\d+)\.(\d+): ", md, re.M) == labels, name
        graded = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")
                  and c.cell_type == "code"
                  and not c.metadata["nbgrader"]["grade_id"].endswith("-hidden-tests")]
        stubs = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution")
                 and c.cell_type == "code"
                 and not c.metadata["nbgrader"]["grade_id"].endswith("-computation")]
        assert graded and len(stubs) == len(graded)
        assert len(answers) + len(stubs) == len(re.findall(r":label: (ex-\d+-\d+)", orig_md))
        assert all("raise NotImplementedError()" in c.source for c in stubs)
        assert not any("hide-input" in c.get("metadata", {}).get("tags", []) for c in nb.cells)


def test_instructor_notebooks_are_untouched(students):
    nb = nbformat.read(ROOT / "notebooks" / "05_sigmoid_k2.ipynb", as_version=4)
    assert any("### BEGIN SOLUTION" in c.source for c in nb.cells)


def test_a_student_notebook_runs_until_its_exercise_test_fails(students):
    from nbclient import NotebookClient
    nb = students["05_sigmoid_k2.ipynb"]
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    errors = [(i, o) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    answers = [i for i, c in enumerate(nb.cells)
               if c.get("metadata", {}).get("nbgrader", {}).get("solution")
               and c.cell_type == "code"]
    assert errors, "the graded test should fail on the stub"
    first_error_cell, output = errors[0]
    # nothing before the first answer cell fails; the first failure is an unanswered stub
    # (raised in the answer cell itself, or in the test cell that calls the stub function)
    assert first_error_cell >= answers[0] and output["ename"] == "NotImplementedError"


def test_instructors_page_lists_every_exercise_with_its_points():
    """The points on the instructors' page are those the course grades with."""
    from make_student import RUBRICS

    page = (ROOT / "book" / "instructors.md").read_text()
    rows = dict(re.findall(r"<(ex-\d+-\d+)>` \| [^|]+\| (\d+) \|", page))
    expected = {label: entry["points"] for label, entry in RUBRICS.items()}
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade") and cell.cell_type == "code":   # visible + hidden tests
                label = meta["grade_id"].removesuffix("-hidden-tests").removesuffix("-tests")
                expected[label] = expected.get(label, 0) + meta["points"]
    assert {k: int(v) for k, v in rows.items()} == expected


def test_every_rubric_adds_up_and_every_written_exercise_has_one():
    from make_student import RUBRICS

    for label, entry in RUBRICS.items():
        assert entry["kind"] in ("derivation", "concept"), label
        assert sum(pts for pts, _ in entry["rubric"]) == entry["points"] >= 2, label
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        labels = re.findall(r":label: (ex-\d+-\d+)", "\n".join(c.source for c in nb.cells))
        coded = {c.metadata["nbgrader"]["grade_id"].removesuffix("-hidden-tests")
                 .removesuffix("-tests")
                 for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")}
        for label in labels:
            assert (label in RUBRICS) != (label in coded), f"{label}: needs exactly one of a rubric or a test"
