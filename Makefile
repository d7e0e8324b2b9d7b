# Softmax from First Principles: every command sets itself up.
#   make book   build the website into _build/html
#   make test   run every test: package, notebooks, site build, browser checks
#   make lab    open the notebooks in JupyterLab (jupyterlab-myst renders exercises and math as the site does)
#   make serve  serve the built site on http://127.0.0.1:8000
#   make student  write student versions of the notebooks (solutions removed) to _build/student
#   make course   write a ready nbgrader course to _build/course
#   make pdf      build the student and instructor PDFs into _build/pdf
#   make bench  run the CPU softmax benchmark (prints the goal table, writes softmaxbook/data/cpu_softmax.json)

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JOBS   ?= 2
PORT   ?= 8000

.PHONY: setup book test test-package test-notebooks test-site lab serve clean freeze bench student course pdf

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (softmaxbook)" >/dev/null
	@touch $@

# Student versions and the nbgrader course take the glued numbers from the book's build.
student: book
	$(BIN)/python tools/make_student.py

course: book
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python tools/make_course.py
	@echo "The nbgrader course is in $(CURDIR)/_build/course (see its README.md)"

# Speed is measured by this script (ratios side by side in one run), never by timed tests.
bench: setup
	$(BIN)/python benchmarks/cpu_softmax.py

book: setup
	$(BIN)/jupyter-book build . -W -n --keep-going
	$(BIN)/python tools/make_bundle.py
	@echo ""
	@echo "The book is at $(CURDIR)/_build/html/index.html  (or run: make serve)"

# The PDF editions (student: no solutions; instructor: with them), offline with xelatex.
# Needs Debian's texlive-xetex, texlive-latex-extra, texlive-lang-chinese, latexmk and
# fonts-noto-cjk (.ci/run installs them).
pdf: book
	$(BIN)/python tools/make_pdf.py

# The package (unit, property and doctests), the notebooks (executed by nbval),
# then a build of the site and the PDFs, and the checks on them (browser, nbgrader, bundle).
test: setup
	$(MAKE) test-package
	$(MAKE) test-notebooks
	$(MAKE) book
	$(MAKE) pdf
	$(MAKE) test-site

test-package: setup
	$(BIN)/python -m pytest -n $(JOBS) tests softmaxbook --doctest-modules -m "not site" -p no:nbval

# The notebooks run $(JOBS) at a time; one BLAS thread each keeps them from fighting over the cores.
test-notebooks: setup
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
	$(BIN)/python -m pytest -n $(JOBS) --dist loadscope --nbval-lax --nbval-current-env notebooks

test-site: setup
	$(BIN)/python -m pytest tests -m site -p no:nbval

lab: setup
	$(BIN)/jupyter lab notebooks

serve:
	@test -f _build/html/index.html || { echo "No site yet: run 'make book' first."; exit 1; }
	@echo "Serving the book on http://127.0.0.1:$(PORT)/ (Ctrl-C stops)"
	$(BIN)/python -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

freeze:
	@(echo "# Exact pins of everything the book, the notebooks and the tests need."; \
	  echo "# Regenerate with: make freeze"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -iv '^softmaxbook'; \
	  echo "-e .") > requirements.txt

clean:
	rm -rf _build .pytest_cache .hypothesis
