# Two entry points (see README): `make book` and `make test`. Both create .venv and install
# the project with pinned versions first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stilts-installed

.PHONY: install book test lint clean

# --no-compile: bytecode is written on first import, for the modules used; compiling every
# installed module up front took half of a fresh install here (208 s against 103 s).
$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-compile --constraint requirements/constraints.txt \
		--editable ".[test]"
	touch $(STAMP)

install: $(STAMP)

book: install
	$(VENV)/bin/stilts book

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf runs book/_build book/generated data/results data/cache
