# The two set-up commands of the README, and a few helpers. Each target installs what it needs.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := $(shell node -p "process.versions.node.split('.')[0]" 2>/dev/null)

.PHONY: demo test reliability soak install system-deps synth bench clean

## demo: run the local pipeline on the bundled sample (no AWS account needed)
demo: install
	$(VENV)/bin/airline-ingest demo

## test: run the whole test suite (unit, infra, ETL, warehouse, local emulator, end to end)
test: install
	$(PY) -m pytest

## reliability: only the bad-input corpus, the fault and the load tests (part of `make test` too)
reliability: install
	$(PY) -m pytest -s tests/reliability

## soak: the load tests with 100 files in sequence instead of make test's 12
soak: install
	RELIABILITY_SEQUENCE_FILES=100 $(PY) -m pytest -s tests/reliability/test_load.py

## synth: synthesize the CDK app with the project's own CDK CLI
synth: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx cdk synth --quiet

## bench: the benchmark (README "Performance"): throughput against PostgreSQL COPY, latency, scaling
bench: install
	$(PY) -m bench.run_bench

install: system-deps $(VENV)/.installed node_modules/.installed

system-deps:
	@scripts/install-system-deps.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) node_modules cdk.out .airline-local .pytest_cache
