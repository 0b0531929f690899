# Two entry points (see README): `make book` and `make test`. Both create .venv and install
# the project with pinned versions first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stilts-installed

.PHONY: install book test lint clean

# pip compiles every installed module to bytecode one file at a time (half of a fresh install
# here); compileall does it on every core instead (208 s in all before, 155 s after). Like pip,
# it skips files this Python cannot compile (torch ships some for newer Pythons), so its status
# is not checked. Bytecode must be written here: PYTHONDONTWRITEBYTECODE keeps imports from it.
$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-compile --constraint requirements/constraints.txt \
		--editable ".[test]"
	$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
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
