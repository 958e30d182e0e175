# autolabel task runner. Every target installs what it needs first:
#   make local   run the whole pipeline locally against an embedded AWS emulator
#                (SERVE=1: keep it running for `.venv/bin/autolabel`)
#   make test    lint, type-check and run the whole test suite
#   make synth   cdk synth (offline, no credentials), cdk-nag checks included
#   make deploy  cdk deploy (needs AWS credentials); both take CDK_ARGS="-c key=value ..."
#   make soak / make benchmark / make cost   reliability, speed and cost figures
#                (make soak also runs the full-scale versions of the tests marked slow)
#   make backfill-demo  `autolabel backfill` of N=3000 objects in the emulator, interrupted and resumed
#                (IN_AWS=1: the backfill job in AWS, emulated: a batch retried, cancelled, resumed, reconciled)
#   make property  the property-based tests with the larger Hypothesis profile (make test runs the small one)
SHELL := /bin/bash
# The one Python version (.python-version): the venv, the tests and the Lambda runtime.
PYTHON_VERSION := $(shell cat .python-version)
# python3.13 on PATH if it runs (a pyenv shim set to another version does not),
# else the newest 3.13.x under pyenv's root ($PYENV_ROOT, default ~/.pyenv).
PYTHON ?= $(shell python$(PYTHON_VERSION) -c '' >/dev/null 2>&1 && command -v python$(PYTHON_VERSION) \
	|| ls -d "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/$(PYTHON_VERSION).*/bin/python$(PYTHON_VERSION) 2>/dev/null \
	| sort -V | tail -n 1 | grep . || echo python$(PYTHON_VERSION)-not-found)
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup test lint typecheck pytest property local synth deploy benchmark soak cost backfill-demo clean

# The pinned requirements, then the project itself (editable), which puts the
# `autolabel` command in .venv/bin (pyproject.toml [project.scripts]), and
# lambda/ on the venv's path (a .pth file): the tests and tools import the
# functions' packages `labeler`, `manager`, `shared` from the checkout, which
# a wheel ships only inside `autolabel`.
$(PY_STAMP): requirements.txt requirements-dev.txt lambda/requirements.txt constraints.txt .python-version pyproject.toml
	@[ -x "$(PYTHON)" ] || command -v "$(PYTHON)" >/dev/null || { echo "Python $(PYTHON_VERSION) not found (on PATH or under pyenv): install it, e.g. pyenv install $(PYTHON_VERSION)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -e . -c constraints.txt
	$(PY) -c 'import pathlib, site; pathlib.Path(site.getsitepackages()[0], "autolabel-dev-lambda.pth").write_text("$(CURDIR)/lambda\n")'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(PY_STAMP) $(NODE_STAMP)

lint: $(PY_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(PY_STAMP)
	$(VENV)/bin/mypy

# Two processes for the suite (the CI machine has 2 cores), then, alone, the tests paced by
# real time (marked serial), which a busy machine would slow past their caps. The full-scale
# versions of some scenarios (marked slow) run with make soak.
PYTEST_WORKERS ?= 2
pytest: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not serial and not slow" --durations=15
	$(PY) -m pytest -m "serial and not slow"

test: lint typecheck pytest

# Many more and longer random runs than the "ci" profile; a failure prints its
# seed (replay: make property HYPOTHESIS_SEED=<n>) and a @reproduce_failure blob.
property: setup
	HYPOTHESIS_PROFILE=deep $(PY) -m pytest tests/property

# make local SERVE=1 keeps the emulator running afterwards and prints the
# environment to export for `autolabel` (and the aws CLI) in another shell.
# make local MODELS=2: two models, two lanes; one model is stopped while the
# other's images are labeled and announced (local/two_models.py).
local: setup
ifeq ($(MODELS),2)
	$(PY) -m local.two_models
else
	$(PY) -m local.run $(if $(filter 1 true yes,$(SERVE)),--serve)
endif

# e.g. make synth CDK_ARGS="-c projectVersionArn=arn:... -c projectArn=arn:..."
synth: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx cdk synth --quiet $(CDK_ARGS)

deploy: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx cdk deploy $(CDK_ARGS)

benchmark: setup
	$(PY) -m local.benchmark

soak: setup
	$(PY) -m pytest -m slow
	$(PY) -m local.soak

cost: setup
	$(PY) -m local.cost_sim

# e.g. make backfill-demo N=5000, make backfill-demo IN_AWS=1
backfill-demo: setup
	$(PY) -m local.backfill_demo $(if $(N),--objects $(N)) $(if $(filter 1 true yes,$(IN_AWS)),--in-aws)

clean:
	rm -rf $(VENV) node_modules cdk.out .local-run .pytest_cache .mypy_cache .ruff_cache
