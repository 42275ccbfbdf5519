# The two commands of the README: `make run` (a first study) and `make test` (the tests, ruff and
# mypy). Both create .venv with python3 -m venv when it is missing and install the package with
# the pinned versions once; the stamp file below says the install is done (it is redone when
# pyproject.toml or constraints.txt change).
#   make run STUDY=search_spaces/toy.yaml      another study
#   make test PYTEST_ARGS="-m 'not slow'"      a part of the tests
#   make test WORKERS=4                        the tests spread over 4 processes (default 2; 0: one)
PYTHON ?= python3
VENV ?= .venv
STUDY ?= search_spaces/digits_mlp.yaml
PYTEST_ARGS ?=
WORKERS ?= 2

PY := $(VENV)/bin/python
STAMP := $(VENV)/.tuner-installed

.PHONY: run test install

run: $(STAMP)
	$(PY) -m tuner run $(STUDY)

test: $(STAMP)
	$(PY) -m pytest -n $(WORKERS) --dist load --durations=15 $(PYTEST_ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e ".[dev]"
	touch $(STAMP)
