"""The course bundle and the site's downloads, as a student outside the repository meets them.

``make book`` writes ``softmaxbook-course.zip`` and replaces each chapter's download with its
student version. Here the bundle alone is installed into a fresh virtual environment (its
``requirements.txt``, the one step the first cell of every chapter names), and two chapters
downloaded from the built site are run there from a folder of their own: chapter 5 (needs
scikit-learn) and chapter 10 (reads the package's benchmark data, compiles the kernel). Each
must run to its first exercise, which raises ``NotImplementedError`` until the student answers,
with the package imported from the bundle's wheel, not from the repository.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
pytestmark = pytest.mark.site


@pytest.fixture(scope="module")
def bundle_env(tmp_path_factory):
    zip_path = HTML / "softmaxbook-course.zip"
    if not zip_path.exists():
        pytest.fail("no course bundle: run make book first")
    tmp = tmp_path_factory.mktemp("bundle")
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(tmp)
    folder = tmp / "softmaxbook-course"
    venv = tmp / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV",
                                                                     "JUPYTER"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["JUPYTER_DATA_DIR"] = str(tmp / "jupyter-data")      # no kernels of this machine's user
    env["JUPYTER_CONFIG_DIR"] = str(tmp / "jupyter-config")
    py = str(venv / "bin" / "python")
    done = subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "-r", "requirements.txt"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, f"the bundle does not install:\n{done.stderr[-3000:]}"
    subprocess.run([py, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"],
                   cwd=folder, env=env, check=True, capture_output=True)
    return py, env, tmp


def test_bundle_holds_every_student_chapter_the_wheel_and_pins():
    with zipfile.ZipFile(HTML / "softmaxbook-course.zip") as zf:
        names = {Path(n).name for n in zf.namelist()}
        reqs = zf.read("softmaxbook-course/requirements.txt").decode()
    chapters = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert chapters <= names
    assert any(n.endswith(".whl") for n in names) and "README.md" in names
    assert ".whl" in reqs and "numpy==" in reqs and "scikit-learn==" in reqs


@pytest.mark.parametrize("chapter", sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")))
def test_site_download_is_the_student_version(chapter):
    nb = nbformat.read(HTML / "_sources" / "notebooks" / chapter, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "BEGIN SOLUTION" not in text and "{solution" not in text and "HIDDEN TESTS" not in text
    assert "pip install -r requirements.txt" in nb.cells[0].source


@pytest.mark.parametrize("chapter", ["05_sigmoid_k2.ipynb", "10_speed.ipynb"])
def test_downloaded_chapter_runs_in_a_fresh_environment(bundle_env, chapter):
    py, env, tmp = bundle_env
    work = tmp / f"download-{chapter[:2]}"
    work.mkdir()
    shutil.copy(HTML / "_sources" / "notebooks" / chapter, work / chapter)
    nb = nbformat.read(work / chapter, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import softmaxbook\nprint(softmaxbook.__file__)"))
    nbformat.write(nb, work / chapter)
    done = subprocess.run([py, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                           "--allow-errors", "--ExecutePreprocessor.timeout=600",
                           "--output", "executed.ipynb", chapter], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    ran = json.loads((work / "executed.ipynb").read_text())
    code = [c for c in ran["cells"] if c["cell_type"] == "code"]
    errors = [(i, o["ename"]) for i, c in enumerate(code)
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    answers = [i for i, c in enumerate(code)
               if c["metadata"].get("nbgrader", {}).get("solution")]
    assert errors, "the exercise test should fail on the stub"
    # nothing before the first answer cell fails; the first failure is an unanswered stub
    # (raised in the answer cell itself, or in the test cell that calls the stub function)
    assert errors[0][0] >= answers[0] and errors[0][1] == "NotImplementedError", errors[:3]
    assert not any(name in ("ModuleNotFoundError", "ImportError", "FileNotFoundError")
                   for _, name in errors), errors
    where = "".join("".join(o.get("text", "")) for o in code[-1]["outputs"])
    assert str(tmp / "venv") in where, f"softmaxbook imported from {where!r}"
