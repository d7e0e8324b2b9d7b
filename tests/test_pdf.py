"""The PDF editions of ``make pdf`` (run after it, with the site checks).

Both must have built cleanly (no missing glyph, no undefined reference in the LaTeX log), embed
their fonts, carry the edition (version and date) and show the glossary's Chinese terms as text;
the student PDF has every exercise statement and no solution, the instructor PDF has them all.
"""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PDF = ROOT / "_build" / "pdf"
sys.path.insert(0, str(ROOT / "tools"))

pytestmark = pytest.mark.site
EDITIONS = ("student", "instructor")


def text_of(path):
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (Debian's poppler-utils) is needed to check the PDF")
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture(scope="module")
def texts():
    missing = [e for e in EDITIONS if not (PDF / f"softmax-book-{e}.pdf").exists()]
    if missing:
        pytest.fail(f"no {missing} PDF in {PDF}: run make pdf first")
    return {e: text_of(PDF / f"softmax-book-{e}.pdf") for e in EDITIONS}


def exercise_labels():
    labels = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        labels += re.findall(r":label: ex-(\d+)-(\d+)", path.read_text())
    return [f"{a}.{b}" for a, b in labels]


@pytest.mark.parametrize("edition", EDITIONS)
def test_latex_log_is_clean(edition):
    from make_pdf import log_problems

    log = (PDF / f"softmax-book-{edition}.log").read_text(errors="replace")
    assert "Output written on" in log
    assert not log_problems(log)


def test_log_check_catches_what_it_should():
    from make_pdf import log_problems

    assert log_problems("Missing character: There is no 激 in font lmroman10-regular!")
    assert log_problems("LaTeX Warning: Reference `notebooks/03_jacobian:ex-3-3' on page 77 "
                        "undefined on input line 5418.")
    assert not log_problems("LaTeX Font Warning: Font shape `TU/x/m/it' undefined")


@pytest.mark.parametrize("edition", EDITIONS)
def test_fonts_are_embedded(edition):
    lines = subprocess.run(["pdffonts", str(PDF / f"softmax-book-{edition}.pdf")],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    fonts = [line for line in lines[2:] if line.strip()]
    # columns ... emb sub uni object-number generation: "emb" is the fifth from the right
    not_embedded = [line for line in fonts if line.split()[-5] != "yes"]
    assert fonts and not not_embedded, "\n".join(not_embedded)


@pytest.mark.parametrize("edition", EDITIONS)
def test_figures_are_vector_graphics(edition):
    """Matplotlib gives every figure as PDF too (use_book_style), and LaTeX takes it."""
    tex = (PDF / f"softmax-book-{edition}.tex").read_text()
    graphics = re.findall(r"includegraphics(?:\[[^]]*\])?\{\{?([^}]+)\}?([.\w]*)\}", tex)
    assert len(graphics) >= 20
    raster = [name + ext for name, ext in graphics if not ext.endswith(".pdf")]
    assert not raster, raster


def test_every_exercise_and_no_solution_in_the_student_pdf(texts):
    student, instructor = texts["student"], texts["instructor"]
    for number in exercise_labels():
        assert re.search(rf"Exercise {re.escape(number)}\b", student), number
        assert re.search(rf"Solution to Exercise {re.escape(number)}\b", instructor), number
    assert "Solution to" not in student
    assert "BEGIN SOLUTION" not in student.split("For instructors")[0]
    assert "BEGIN SOLUTION" in instructor


def test_edition_and_chinese_text(texts):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for text in texts.values():
        head = text[:3000]
        assert f"Release {version}" in head and re.search(r"\d{4}-\d{2}-\d{2}", head)
        assert "激活值" in text and "最大值索引" in text
