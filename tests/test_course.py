"""The nbgrader course of ``make course``, run through the real nbgrader.

For every chapter: ``generate_assignment`` and ``release_assignment``, and the released notebook
must hold no solution of any kind (code solutions, hidden tests, worked solutions of written
exercises, cells that check a written solution). For two chapters (the first, and chapter 10,
which reads the package's benchmark data and compiles the kernel) three submissions are
autograded in this environment: a correct one (the source's solutions), the unchanged release
(stubs), and a cheat that replaces NumPy's test helpers with no-ops and returns ``None``. The
scores must be full marks, zero and zero on the coding exercises, and the written answers must
wait for a manual grade.

Needs the book's build (the glued numbers), so it runs with the site checks (``-m site``).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

pytestmark = pytest.mark.site

AUTOGRADED = ("ch01", "ch10")


def nbgrader(course, *args):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    from make_course import main

    if not (ROOT / "_build" / "jupyter_execute").exists():
        pytest.fail("the book has not been built: run make book first")
    out = main([str(tmp_path_factory.mktemp("course"))])
    (out / "exchange").mkdir()
    for folder in sorted((out / "source").iterdir()):
        nbgrader(out, "generate_assignment", folder.name, "--force")
        nbgrader(out, "release_assignment", folder.name, "--force")
    return out


def notebooks(course, kind):
    return {p.parent.name: nbformat.read(p, as_version=4)
            for p in sorted((course / kind).glob("*/*.ipynb"))}


def grade_meta(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def sentences(text, length=50):
    """Distinctive pieces of a worked solution: its long lines, whitespace-normalised."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return [line[:length] for line in lines if len(line) >= length]


def test_every_chapter_and_exercise_is_in_the_course(course):
    source = notebooks(course, "source")
    assert len(source) == len(list((ROOT / "notebooks").glob("*.ipynb")))
    readme = (course / "README.md").read_text()
    for name, nb in source.items():
        original = nbformat.read(next((ROOT / "notebooks").glob(f"{name[2:]}_*.ipynb")),
                                 as_version=4)
        labels = re.findall(r":label: (ex-\d+-\d+)",
                            "\n".join(c.source for c in original.cells))
        graded = [grade_meta(c) for c in nb.cells if grade_meta(c).get("grade")]
        collected = {g["grade_id"].removesuffix("-answer").removesuffix("-hidden-tests")
                     .removesuffix("-tests") for g in graded}
        assert collected == set(labels), f"{name}: an exercise cannot be collected"
        assert all(g["points"] >= 1 for g in graded)
        for label in labels:
            assert f"| {name} | {label} |" in readme, f"{label} missing from the notes"


def public_text(nb):
    """What a student may see of a source notebook: its cells without the solution regions,
    the hidden tests and the worked solutions of written exercises."""
    kept = []
    for cell in nb.cells:
        meta = grade_meta(cell)
        if meta.get("solution") and cell.cell_type == "markdown":
            continue
        src = re.sub(r"### BEGIN SOLUTION\n.*?### END SOLUTION", "", cell.source, flags=re.S)
        kept.append(re.sub(r"### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS", "", src,
                           flags=re.S))
    return "\n".join(kept)


def test_released_notebooks_contain_no_solution(course):
    source, release = notebooks(course, "source"), notebooks(course, "release")
    assert release.keys() == source.keys()
    for name, nb in release.items():
        public = public_text(source[name])
        # a line of a solution counts as leaked when the release has it and the public
        # part of the chapter does not (a line such as "z = np.asarray(z)" can be both)
        full = "\n".join(c.source for c in nb.cells)
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "hidden test:",
                       "{solution", "solution-start", "{glue", "{cite}", "{term}", "```{"):
            assert marker not in full, f"{name}: {marker!r} in the released notebook"
        text = "\n".join(line for line in full.splitlines() if line not in public)
        flat = " ".join(text.split())
        for cell in source[name].cells:
            meta = grade_meta(cell)
            if meta.get("solution") and cell.cell_type == "markdown":
                # the worked solution of a written exercise
                assert len(cell.source) > 100, f"{name}: no worked solution in the source"
                for piece in sentences(cell.source):
                    assert piece not in flat, f"{name}: released {piece!r}"
            if meta.get("solution") and cell.cell_type == "code":
                body = re.search(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source,
                                 re.S).group(1)
                for line in body.splitlines():
                    if len(line.strip()) > 25:
                        assert line.strip() not in text, f"{name}: released {line.strip()!r}"
            found = re.search(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source,
                              re.S)
            if meta.get("grade") and cell.cell_type == "code" and found:
                for line in found.group(1).splitlines():
                    if len(line.strip()) > 25:
                        assert line.strip() not in text, f"{name}: released {line.strip()!r}"
        answers = [c for c in nb.cells if grade_meta(c).get("solution")
                   and c.cell_type == "markdown"]
        assert answers and all(c.source.strip() == "YOUR ANSWER HERE" for c in answers)


def fill(release_nb, source_nb, how):
    """A submission made from the released notebook: ``correct`` puts back the source's
    solutions, ``stub`` changes nothing, ``cheat`` disables the test helpers and returns None."""
    nb = nbformat.from_dict(release_nb)
    solutions = {grade_meta(c)["grade_id"]: c.source for c in source_nb.cells
                 if grade_meta(c).get("solution")}
    for cell in nb.cells:
        meta = grade_meta(cell)
        if not meta.get("solution"):
            continue
        if cell.cell_type == "markdown":
            cell.source = "My answer: " + solutions[meta["grade_id"]][:200] \
                if how == "correct" else cell.source
        elif how == "correct":
            cell.source = solutions[meta["grade_id"]]
        elif how == "cheat":
            names = re.findall(r"^def (\w+)\(", cell.source, re.M)
            cell.source = ("import numpy as np\nimport numpy.testing\n"
                           "np.testing.assert_allclose = lambda *args, **kwargs: None\n"
                           "np.testing.assert_array_equal = lambda *args, **kwargs: None\n"
                           + "".join(f"def {n}(*args, **kwargs):\n    return None\n"
                                     for n in names))
    return nb


@pytest.fixture(scope="module")
def graded(course):
    from nbgrader.api import Gradebook

    source, release = notebooks(course, "source"), notebooks(course, "release")
    for assignment in AUTOGRADED:
        path = next((course / "release" / assignment).glob("*.ipynb"))
        for student in ("correct", "stub", "cheat"):
            folder = course / "submitted" / student / assignment
            folder.mkdir(parents=True)
            nbformat.write(fill(release[assignment], source[assignment], student),
                           folder / path.name)
        nbgrader(course, "autograde", assignment, "--create", "--force")
    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="softmax-first-principles") as gb:
        for assignment in AUTOGRADED:
            name = next((course / "release" / assignment).glob("*.ipynb")).stem
            for student in ("correct", "stub", "cheat"):
                nb = gb.find_submission_notebook(name, assignment, student)
                scores[assignment, student] = {
                    g.name: (g.auto_score, g.max_score, g.needs_manual_grade, g.cell_type)
                    for g in nb.grades}
    return scores


@pytest.mark.parametrize("assignment", AUTOGRADED)
def test_autograding_scores_correct_stub_and_cheat(graded, assignment):
    correct, stub, cheat = (graded[assignment, s] for s in ("correct", "stub", "cheat"))
    coding = [k for k, v in correct.items() if v[3] == "code"]
    written = [k for k, v in correct.items() if v[3] == "markdown"]
    assert coding and written
    for k in coding:
        assert correct[k][0] == correct[k][1] > 0, f"{k}: a correct answer lost points"
        assert stub[k][0] == 0, f"{k}: the unanswered stub scored {stub[k][0]}"
        assert cheat[k][0] == 0, f"{k}: a cheat scored {cheat[k][0]}"
    for k in written:
        assert correct[k][2], f"{k}: a written answer must wait for a manual grade"

