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
]


def cell_source(notebook, grade_id):
    nb = json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text())
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return "".join(cell["source"])
    raise LookupError(grade_id)


@pytest.mark.parametrize("notebook, grade_id, name, cheat", CHEATS, ids=[c[1] for c in CHEATS])
def test_calling_the_package_fails_the_test(notebook, grade_id, name, cheat):
    namespace = {"np": np, "softmax": softmaxbook.softmax, "logsumexp": softmaxbook.logsumexp,
                 name: cheat}
    with pytest.raises(AssertionError, match=f"{grade_id[:-6]}: your answer calls"):
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
