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
    ("10_speed", "test_split_row_softmax", "split_row_softmax",
     lambda z, parts: softmaxbook.softmax_kernel(z)),
    ("09_numerical_accuracy", "test_compensated_softmax", "compensated_softmax",
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
