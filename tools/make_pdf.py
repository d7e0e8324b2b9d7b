"""Build the PDF editions of the book offline with xelatex (``make pdf``, after ``make book``).

Writes two PDFs to ``_build/pdf/``:

* ``softmax-book-student.pdf``: the book with the exercise statements and without any
  solution (built with ``SOFTMAXBOOK_STUDENT_EDITION=1``, see ``book/_ext/editions.py``);
* ``softmax-book-instructor.pdf``: the book with every solution printed after its exercise.

Each build is Jupyter Book's ``--builder pdflatex`` (Sphinx's LaTeX writer, then latexmk with
xelatex; the notebooks' outputs come from the execution cache of ``make book``). The build
fails when LaTeX reports a missing glyph ("Missing character"), an undefined reference or
citation, or no PDF. Usage: ``python tools/make_pdf.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LATEX = ROOT / "_build" / "latex"
OUT = ROOT / "_build" / "pdf"
EDITIONS = {"student": "1", "instructor": "0"}
#: The LaTeX document's name (_config.yml: latex.latex_documents.targetname).
TARGET = Path(yaml.safe_load((ROOT / "_config.yml").read_text())["latex"]["latex_documents"]
              ["targetname"]).stem
PROBLEMS = re.compile(r"Missing character|Reference `[^']*' on page \d+ undefined|"
                      r"Hyper reference `[^']*' on page \d+ undefined|"
                      r"Citation `[^']*' on page \d+ undefined|There were undefined references")


def log_problems(log_text):
    """The lines of a LaTeX log that make the PDF unacceptable."""
    return sorted({m.group(0) for m in PROBLEMS.finditer(log_text.replace("\n", ""))})


def build(edition):
    if LATEX.exists():
        shutil.rmtree(LATEX)            # a fresh LaTeX run: no stale .aux hides a problem
    env = dict(os.environ, SOFTMAXBOOK_STUDENT_EDITION=EDITIONS[edition])
    jb = Path(sys.executable).parent / "jupyter-book"
    start = time.perf_counter()
    done = subprocess.run([str(jb), "build", str(ROOT), "--builder", "pdflatex", "-n",
                           "--keep-going"], env=env, capture_output=True, text=True)
    pdfs = [p for p in [LATEX / f"{TARGET}.pdf"] if p.exists()]   # (figures are PDFs too)
    if done.returncode != 0 or not pdfs:
        sys.stdout.write(done.stdout[-6000:] + done.stderr[-3000:])
        raise SystemExit(f"the {edition} PDF did not build")
    problems = log_problems((LATEX / pdfs[0].with_suffix(".log").name).read_text(errors="replace"))
    if problems:
        raise SystemExit(f"the {edition} PDF has problems: {problems[:10]}")
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / f"softmax-book-{edition}.pdf"
    shutil.copy(pdfs[0], target)
    for suffix in (".log", ".tex"):                 # for the tests
        shutil.copy(pdfs[0].with_suffix(suffix), target.with_suffix(suffix))
    print(f"{target}: built in {time.perf_counter() - start:.0f} s")
    return target


def main():
    for edition in EDITIONS:
        build(edition)


if __name__ == "__main__":
    main()
