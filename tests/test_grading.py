"""The autograded tests cannot be passed by calling the package's own solution."""

import json
from pathlib import Path

import numpy as np
import pytest

import softmaxbook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# (notebook, grade_id of the test cell, the answer's name, a "solution" that calls the package)
CHEATS = [
    ("01_scores_to_probabilities", "ex-1-2-tests", "stable_softmax",
     lambda z: softmaxbook.softmax(z, axis=1)),
    ("02_temperature_lse_maxent", "ex-2-2-tests", "smooth_max",
     lambda z, T: T * softmaxbook.logsumexp(np.asarray(z) / T, axis=-1)),
    # detours through a sibling of the function asked for
    ("01_scores_to_probabilities", "ex-1-2-tests", "stable_softmax",
     lambda z: np.exp(z - softmaxbook.logsumexp(z, axis=1)[:, None])),
    ("01_scores_to_probabilities", "ex-1-2-tests", "stable_softmax",
     lambda z: softmaxbook.softmax_kernel(z)),
    ("02_temperature_lse_maxent", "ex-2-2-tests", "smooth_max",
     lambda z, T: T * (softmaxbook.cross_entropy(
         np.atleast_2d(z) / T, np.zeros(np.atleast_2d(z).shape[0], int), reduction="none")
         + np.atleast_2d(z)[:, 0] / T).reshape(np.shape(z)[:-1])),
    ("10_speed", "ex-10-2-tests", "split_row_softmax",
     lambda z, parts: softmaxbook.softmax_kernel(z)),
    ("09_numerical_accuracy", "ex-9-2-tests", "compensated_softmax",
     lambda z: softmaxbook.reference.mp_softmax(z)),
]


def cell_source(notebook, grade_id):
    nb = json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text())
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return "".join(cell["source"])
    raise LookupError(grade_id)


@pytest.mark.parametrize("notebook, grade_id, name, cheat", CHEATS,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(CHEATS)])
def test_calling_the_package_fails_the_test(notebook, grade_id, name, cheat):
    from softmaxbook.reference import mp_softmax

    def adversarial(dtype):      # stands in for chapter 9's family of hard rows
        return {"wide spread": np.array([[0.0, -30.5, -700.25, 3.0]], dtype=dtype)}
    namespace = {"np": np, "softmax": softmaxbook.softmax, "logsumexp": softmaxbook.logsumexp,
                 name: cheat, "rng": np.random.default_rng(0), "adversarial": adversarial,
                 "mp_softmax": mp_softmax}
    label = "ex-" + notebook[:2].lstrip("0") + "-2"
    with pytest.raises(AssertionError, match=f"{label}: your answer calls"):
        exec(cell_source(notebook, grade_id), namespace)
    # and the same tests pass for an honest answer, so the guard is not what fails
    from softmaxbook.grading import forbidden
    with forbidden(namespace, "softmax"):
        pass
    assert namespace["softmax"] is softmaxbook.softmax


def test_forbidden_names_the_function_not_a_submodule_of_the_same_name():
    """softmaxbook.glue is both a submodule and a function in it: the
    function is what a notebook calls, so that is what must be replaced."""
    from softmaxbook.glue import glue
    from softmaxbook.grading import forbidden

    namespace = {"glue": glue}
    with forbidden(namespace, "glue", exercise="ex-x"):
        with pytest.raises(AssertionError, match="ex-x: your answer calls"):
            namespace["glue"]("x", 1.0)
    assert namespace["glue"] is glue


def test_forbidden_rejects_an_unknown_name():
    from softmaxbook.grading import forbidden

    with pytest.raises(LookupError, match="no function 'nonesuch'"):
        with forbidden({}, "nonesuch"):
            pass


# Answers to ex-1-2 that must each fail its test cell (hidden tests included), run in the
# chapter's own kernel after the whole chapter: references the names do not show, SciPy's
# twin, checks redefined, the reference rebound, and two wrong shifts.
ADVERSARIAL_ANSWERS = {
    "partial": "import functools\nstable_softmax = functools.partial(softmaxbook.softmax, axis=1)",
    "default argument": "def stable_softmax(z, _f=softmax):\n    return _f(z, axis=1)",
    "scipy twin": ("import scipy.special\n"
                   "def stable_softmax(z):\n    return scipy.special.softmax(z, axis=1)"),
    "checks redefined": ("import softmaxbook.grading as g\n"
                         "g.check = g.check_close = lambda *a, **k: None\n"
                         "def stable_softmax(z):\n    return None"),
    "row mean shift": ("def stable_softmax(z):\n"
                       "    e = np.exp(z - z.mean(axis=1, keepdims=True))\n"
                       "    return e / e.sum(axis=1, keepdims=True)"),
    "in place": ("def stable_softmax(z):\n    z -= z.max(axis=1, keepdims=True)\n"
                 "    np.exp(z, out=z)\n    z /= z.sum(axis=1, keepdims=True)\n    return z"),
    "reference rebound": ("softmax = lambda z, **kw: np.full(np.shape(z), 1 / np.shape(z)[-1])\n"
                          "softmaxbook.softmax = softmax\nstable_softmax = softmax"),
}


def test_adversarial_answers_fail_the_test_cell():
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / "01_scores_to_probabilities.ipynb", as_version=4)
    test = "\n".join(c.source for c in nb.cells
                     if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                     in ("ex-1-2-tests", "ex-1-2-hidden-tests"))   # visible, then hidden
    nb.cells.append(nbformat.v4.new_code_cell("import softmaxbook"))
    # a correct answer first: the test cell itself must pass
    nb.cells += [nbformat.v4.new_code_cell(
        "def stable_softmax(z):\n    e = np.exp(z - z.max(axis=1, keepdims=True))\n"
        "    return e / e.sum(axis=1, keepdims=True)"), nbformat.v4.new_code_cell(test)]
    order = []
    for name, answer in ADVERSARIAL_ANSWERS.items():
        nb.cells += [nbformat.v4.new_code_cell(answer), nbformat.v4.new_code_cell(test)]
        order.append(name)
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    control = nb.cells[-2 * len(order) - 1]
    assert not [o for o in control.outputs if o.output_type == "error"], control.outputs
    tests = nb.cells[-2 * len(order) + 1::2]
    for name, cell in zip(order, tests):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert errors and errors[0].ename == "AssertionError", \
            f"{name}: the test cell did not fail ({[o.get('ename') for o in errors]})"
