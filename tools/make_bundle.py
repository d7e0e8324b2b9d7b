"""Make the course bundle and put the student notebooks on the website (run by ``make book``).

After the site is built into ``_build/html`` this writes

* ``_build/html/softmaxbook-course.zip``, the **course bundle**: every chapter's student
  version (no solutions, plain Markdown), the package ``softmaxbook`` as a wheel (with the
  benchmark data chapter 10 reads), a ``requirements.txt`` that installs the wheel and the
  exact versions of what the chapters import, and a README;
* the student version of each chapter over ``_build/html/_sources/notebooks/<chapter>.ipynb``,
  the file the page's download button serves, so that a reader who downloads a chapter gets
  the exercises without the solutions.

A test (``tests/test_bundle.py``) installs the bundle into a fresh virtual environment and runs
a downloaded chapter there.
Usage: ``python tools/make_bundle.py [HTML_DIR]``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_student import main as make_students, wheel_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = "softmaxbook-course.zip"
#: What a chapter needs besides the package's own dependencies: a kernel and JupyterLab
#: (with jupyterlab-myst); the versions are those of the book's requirements.txt.
PINNED = ("numpy", "scipy", "sympy", "matplotlib", "scikit-learn", "mpmath", "numba",
          "llvmlite", "ipykernel", "jupyterlab", "jupyterlab-myst")

README = """\
# Softmax from First Principles: course bundle

The chapters of the book as student notebooks (exercises without solutions), the book's
package `softmaxbook` as a wheel, and what they need. Python 3.11 or later.

1. In this folder, once (in a virtual environment if you like):

       python -m pip install -r requirements.txt

2. Then `jupyter lab`, and open a chapter (`01_scores_to_probabilities.ipynb`, ...).

Each coding exercise raises `NotImplementedError` until you write your code; the cell after
it tests the answer. Written exercises have an answer cell under them.
"""


def pins():
    """Exact versions, from the book's requirements.txt, of the distributions in PINNED."""
    found = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)$", line.strip())
        if m:
            found[m.group(1).lower().replace("_", "-")] = line.strip()
    missing = [name for name in PINNED if name not in found]
    if missing:
        raise SystemExit(f"requirements.txt pins none of {missing}")
    return [found[name] for name in PINNED]


def build_wheel(dest: Path) -> Path:
    # built from a clean copy of the package's files: no stale build/ folder can slip in
    src = dest.parent / "wheel-source"
    shutil.copytree(ROOT / "softmaxbook", src / "softmaxbook",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-W", "ignore", "-m", "pip", "wheel", "--quiet",
                    "--no-deps", "--no-build-isolation", "-w", str(dest), str(src)],
                   check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    wheel = dest / wheel_name()
    if not wheel.exists():
        raise SystemExit(f"pip did not write {wheel.name}: {sorted(p.name for p in dest.iterdir())}")
    with zipfile.ZipFile(wheel) as zf:
        if "softmaxbook/data/cpu_softmax.json" not in zf.namelist():
            raise SystemExit("the wheel lacks the benchmark data chapter 10 reads")
    return wheel


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    html = Path(argv[0]) if argv else ROOT / "_build" / "html"
    if not (html / "index.html").exists():
        raise SystemExit(f"{html} holds no built site: run jupyter-book build first")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "softmaxbook-course"
        folder.mkdir()
        notebooks = make_students([str(folder)])
        wheel = build_wheel(folder)
        (folder / "requirements.txt").write_text(
            "# Install with: python -m pip install -r requirements.txt (in this folder)\n"
            f"./{wheel.name}\n" + "\n".join(pins()) + "\n")
        (folder / "README.md").write_text(README)
        with zipfile.ZipFile(html / BUNDLE, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(folder.iterdir()):
                zf.write(path, f"softmaxbook-course/{path.name}")
        sources = html / "_sources" / "notebooks"
        for nb in notebooks:
            if (sources / nb.name).exists():
                shutil.copy(nb, sources / nb.name)
            else:
                raise SystemExit(f"{sources / nb.name} is missing: has the theme changed?")
    print(f"wrote {html / BUNDLE} and the student downloads")


if __name__ == "__main__":
    main()
