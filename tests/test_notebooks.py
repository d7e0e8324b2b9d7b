"""Static checks of the chapter notebooks: committed clean and written the DESIGN §5 way."""

import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IDS = [p.name for p in NOTEBOOKS]


def load(path):
    return nbformat.read(path, as_version=4)


def test_there_are_notebooks_and_all_are_in_the_toc():
    assert NOTEBOOKS
    toc = (ROOT / "_toc.yml").read_text()
    for p in NOTEBOOKS:
        assert f"notebooks/{p.stem}" in toc, f"{p.name} is not in _toc.yml"
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", p.name) for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_without_outputs(path):
    nb = load(path)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing " \
                      "(jupyter nbconvert --clear-output --inplace)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_chapter_structure(path):
    nb = load(path)
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert "Learning goals" in md and "Prerequisites" in md
    assert "## Summary" in md and "## Exercises" in md
    assert "sp.init_printing(" in code, "SymPy output should render as math"
    assert "default_rng(" in code and "np.random.seed" not in code
    assert "{cite}`" in md
    assert "sp.simplify(" in code and "np.testing.assert_allclose" in code


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_exercises_have_solutions_and_coding_ones_nbgrader_markup(path):
    nb = load(path)
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    chapter = int(path.name[:2])
    labels = re.findall(r":label: (ex-\d+-\d+)", md)
    assert len(labels) >= 3, f"{path.name}: only {len(labels)} exercises"
    assert all(label.startswith(f"ex-{chapter}-") for label in labels)
    for label in labels:
        assert re.search(rf"```\{{solution(-start)?\}} {label}\n:class: dropdown", md), \
            f"{label} has no hidden solution"
    solution_cells = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    test_cells = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    assert solution_cells and test_cells, "a coding exercise with nbgrader metadata is required"
    for c in solution_cells:
        assert "### BEGIN SOLUTION" in c.source and "### END SOLUTION" in c.source
    visible = [c for c in test_cells
               if not c.metadata["nbgrader"]["grade_id"].endswith("-hidden-tests")]
    hidden = [c for c in test_cells
              if c.metadata["nbgrader"]["grade_id"].endswith("-hidden-tests")]
    assert len(visible) == len(hidden) == len(solution_cells)
    for c in test_cells:
        # checks that fail with a message and survive a redefined np.testing helper
        assert "from softmaxbook.grading import" in c.source
        assert "importlib.reload(softmaxbook.grading)" in c.source
        assert re.search(r"\bcheck(_close)?\(", c.source)
        assert "np.testing" not in c.source and not re.search(r"^\s*assert\b", c.source, re.M)
        assert c.metadata["nbgrader"]["points"] >= 1
    for c in hidden:
        # a grade cell of its own: a student who sees the visible tests pass is not misled
        assert "### BEGIN HIDDEN TESTS" in c.source and "### END HIDDEN TESTS" in c.source
        outside = re.sub(r"### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS", "", c.source,
                         flags=re.S)
        assert "print(" not in outside and "check" not in outside.split("import", 1)[0]
    for c in visible:
        assert "HIDDEN TESTS" not in c.source
    # grade ids name the exercise, as the instructors' page and the course notes do
    for c in solution_cells:
        assert re.fullmatch(rf"ex-{chapter}-\d+-code", c.metadata["nbgrader"]["grade_id"])
    for c in visible:
        label = c.source.splitlines()[0].removeprefix("# Tests for exercise ").strip()
        assert c.metadata["nbgrader"]["grade_id"] == f"{label}-tests"
        assert sum(t.metadata["nbgrader"]["points"] for t in test_cells
                   if t.metadata["nbgrader"]["grade_id"].startswith(label + "-")) >= 2


def test_config_fails_on_cell_errors_and_warnings():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert cfg["execute"]["execute_notebooks"] == "cache"
    makefile = (ROOT / "Makefile").read_text()
    assert "jupyter-book build . -W -n --keep-going" in makefile


def test_requirements_are_exact_pins():
    lines = [ln for ln in (ROOT / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert "-e ." in lines
    for ln in lines:
        assert ln == "-e ." or re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[A-Za-z0-9_.+\-]+", ln), ln
    jb = [ln for ln in lines if ln.lower().startswith("jupyter-book==")]
    assert jb and jb[0].split("==")[1].startswith("1."), "Jupyter Book 1.x is required"


# A derivation changed to a wrong formula must make its notebook fail. Each case names a
# chapter, a line of a derivation cell, and a wrong version of that line; the notebook is
# executed up to that cell with the wrong line in place and must stop with AssertionError.
WRONG_DERIVATIONS = [
    ("03_jacobian.ipynb", "claimed = sp.diag(*s_vec) - s_vec * s_vec.T",
     "claimed = sp.diag(*s_vec) + s_vec * s_vec.T"),
    ("04_delta_a_minus_y.ipynb", "assert sp.simplify((grad - (a - y)).subs(sums_to_one))",
     "assert sp.simplify((grad - (y - a)).subs(sums_to_one))"),
    ("04_delta_a_minus_y.ipynb", "correct_bracket = -(y[j] - a[j] * sum_y)",
     "correct_bracket = -(y[j] * (1 - a[j]) - a[j] * sum_y)"),
    ("05_sigmoid_k2.ipynb", "assert sp.simplify(p1 - sigma(z1 - z2)) == 0",
     "assert sp.simplify(p1 - sigma(z2 - z1)) == 0"),
    ("06_softmax_regression_digits.ipynb", "(sp.diag(*phi[:2]) - phi_vec * phi_vec.T)",
     "(sp.diag(*phi[:2]) + phi_vec * phi_vec.T)"),
    ("07_calibration_distillation.ipynb", "assert sp.simplify(grad_i - (p_sym[i] - q_sym[i]) / T) == 0",
     "assert sp.simplify(grad_i - (p_sym[i] - q_sym[i]) * T) == 0"),
]


@pytest.mark.parametrize("name, right, wrong", WRONG_DERIVATIONS,
                         ids=[f"{n[:2]}-{i}" for i, (n, _, _) in enumerate(WRONG_DERIVATIONS)])
def test_a_wrong_derivation_makes_the_notebook_fail(name, right, wrong):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = load(ROOT / "notebooks" / name)
    target = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and right in c.source)
    nb.cells = [c for c in nb.cells[: target + 1] if c.cell_type == "code"]
    nb.cells[-1].source = nb.cells[-1].source.replace(right, wrong)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}})
    with pytest.raises(CellExecutionError) as info:
        client.execute()
    assert "AssertionError" in str(info.value)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_file_is_read_by_a_path_relative_to_the_repository(path):
    """A chapter must run from any folder and outside the repository (data come from the
    package, softmaxbook.data)."""
    code = "\n".join(c.source for c in load(path).cells if c.cell_type == "code")
    assert not re.search(r"""["']\.\.?/""", code), path.name
    assert not re.search(r"""Path\(\s*["']\.\.?["']\s*\)""", code), path.name
    assert "open(" not in code and "read_text(" not in code, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_lines_fit_the_code_column(path):
    """At 1280 px the book's code column holds 79 characters: no cell scrolls sideways."""
    long = [(i, line) for i, c in enumerate(load(path).cells) if c.cell_type == "code"
            for line in c.source.splitlines() if len(line) > 79]
    assert not long, f"{path.name}: {len(long)} code lines over 79 characters: {long[:3]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_figures_are_checked_for_legibility(path):
    """use_book_style() makes every figure a cell shows fail that cell when its text would
    be under softmaxbook.plotting.MIN_TEXT_PX pixels in the book's column (or under
    MIN_PHONE_TEXT_PX on a phone), or when a labelled concept changes its colour or line
    style within the chapter (softmaxbook.plotting.check_styles)."""
    code = "\n".join(c.source for c in load(path).cells if c.cell_type == "code")
    if "plt." in code:
        assert "use_book_style()" in code and "check_figures=False" not in code


def test_jupyterlab_renders_myst():
    """make lab: jupyterlab-myst must be installed and compatible with the pinned JupyterLab
    (a newer JupyterLab silently disables it)."""
    import shutil
    import subprocess
    import sys

    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.exists():
        jupyter = shutil.which("jupyter")
    out = subprocess.run([str(jupyter), "labextension", "list"], capture_output=True,
                         text=True, timeout=120)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    assert re.search(r"jupyterlab-myst v[\d.]+ enabled OK", text), text
    assert "is not compatible" not in text, text
