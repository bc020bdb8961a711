# The two set-up commands of the README, and a few helpers. Each target installs what it needs.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
LOCK   := requirements.lock
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := $(shell node -p "process.versions.node.split('.')[0]" 2>/dev/null)

.PHONY: demo test reliability soak install system-deps synth bench lock clean aws-test integ-snapshot diagrams iam-calls release-template

## demo: run the local pipeline on the bundled sample (no AWS account needed)
demo: install
	$(VENV)/bin/airline-ingest demo

## test: run the whole test suite (unit, infra, ETL, warehouse, local emulator, end to end), its
## modules spread over TEST_WORKERS processes (pytest-xdist; each module, or package sharing a
## fixture, whole on one worker: tests/conftest.py). Three on the 2-core reference machine: the
## tests wait (polls, sleeps, I/O) a tenth of the time, and a third worker fills those gaps:
## 8:04 -> 7:09, the cores 89 -> 97 % busy (docs/testing.md). Never the `aws` tests, even with AIRLINE_AWS_TEST=1
## exported: deploying to a real account is `make aws-test`'s alone.
## Bytecode is written even where the environment sets PYTHONDONTWRITEBYTECODE: pytest keeps the
## test modules it rewrote for its assertions in __pycache__ (gitignored), and each worker's
## collection takes 2.5 s instead of 4.5 s.
TEST_WORKERS ?= 3
test: install
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not aws"

## reliability: only the bad-input corpus, the fault and the load tests (part of `make test` too)
reliability: install
	$(PY) -m pytest -s tests/reliability

## soak: the load tests with 100 files in sequence and a burst of 20 instead of make test's 8 and 10
soak: install
	RELIABILITY_SEQUENCE_FILES=100 RELIABILITY_BURST_FILES=20 $(PY) -m pytest -s tests/reliability/test_load.py

## synth: synthesize the CDK app with the project's own CDK CLI
synth: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx cdk synth --quiet

## iam-calls: docs/iam-calls.md, the calls of a sample run by principal with the statements that allowed them
iam-calls: install
	$(PY) -m airline_local.iam_calls docs/iam-calls.md

## bench: the benchmark (docs/performance.md): throughput against PostgreSQL COPY, latency, scaling
bench: install
	$(PY) -m bench.run_bench

## aws-test: the acceptance test on a real AWS account (deploys a billed stack under a unique name,
## runs the sample, destroys it); needs AIRLINE_AWS_TEST=1, credentials and a region, else it skips
aws-test: install
	$(PY) -m pytest -m aws -s tests/aws

## diagrams: redraw docs/architecture.md's state machine diagrams from the synthesized template
diagrams: install
	$(PY) -m airline_local.diagram

## integ-snapshot: rewrite tests/integ/integ_pipeline.py.snapshot/, the CDK integ test's assembly
integ-snapshot: install
	$(PY) -m tests.integ.snapshot

## release-template: when a release is cut, keep the template it deploys (as `cdk deploy` synthesizes
## it) in tests/infra/releases/<version>.template.json: later releases are checked against it
release-template: install
	$(PY) tests/infra/release_template.py

# The last step builds local Spark's class archive once (airline_local/glue/spark_conf.py: its
# JVMs start on a third less CPU); a no-op when it exists.
install: system-deps $(VENV)/.installed node_modules/.installed
	@$(PY) -m airline_local.glue.class_archive

system-deps:
	@scripts/install-system-deps.sh

# Every Python package at the version pinned in $(LOCK) (all of `.[dev]`, transitively), then the
# project itself, editable, adding nothing: a new release of botocore & co. can't reach local mode.
$(VENV)/.installed: $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet 'pip==26.3'
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

## lock: re-resolve $(LOCK) from pyproject.toml (run after changing its dependencies; pins that
## still satisfy it are kept; `make lock LOCK_FLAGS=--upgrade` moves every pin to the newest release)
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet 'pip==26.3' 'pip-tools==7.6.2'
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --extra dev --strip-extras --allow-unsafe \
	  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host $(LOCK_FLAGS) \
	  --output-file $(LOCK) pyproject.toml

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) node_modules cdk.out .airline-local .pytest_cache
