# Everything a fresh machine needs: `make demo` runs ModelMill on the shipped sample, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MODELMILL := $(VENV)/bin/modelmill
DEMO_OUT ?= models/smollm2-int4

.PHONY: setup demo test test-fast bench clean extension e2e bytecode

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first (any other spec pulls a multi-GB CUDA build), then the project.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(MODELMILL) samples fetch smollm2
	$(MODELMILL) auto-opt -m sample:smollm2 -o $(DEMO_OUT) --precision int4
	$(MODELMILL) chat $(DEMO_OUT) "What is machine learning?" --max_new_tokens 96 --stats
	@echo "optimized model: $(abspath $(DEMO_OUT))"

# Test workers (pytest-xdist): one per core, each taking whole test files (--dist loadfile): a file's tests share
# its module fixtures (a language server, the two-node Ray cluster) and some build on each other in file order.
TEST_WORKERS ?= auto
PYTEST_PARALLEL := -n $(TEST_WORKERS) --dist loadfile

# Tests start hundreds of Python processes (run workers, language servers): with PYTHONDONTWRITEBYTECODE set (as on
# CI's machines) each one compiles what it imports, and pytest rewrites every test file's asserts in each xdist
# worker. Compile once, and let the test processes write their caches (on the 2-vCPU VM of bench/README.md's
# test_suite.py figures the difference was within the noise; it is cheap).
unexport PYTHONDONTWRITEBYTECODE
bytecode: setup
	$(PY) -m compileall -q -j 0 server tests bench > /dev/null

# The default suite plus the slow end-to-end tests on the real samples, the extension's unit tests and its e2e.
test: setup node_modules/.installed bytecode
	$(PY) -m pytest -q $(PYTEST_PARALLEL)
	npm test
	$(MAKE) e2e

# Quick loop while developing: skips the slow end-to-end tests.
test-fast: setup bytecode
	$(PY) -m pytest -q -m "not slow" $(PYTEST_PARALLEL)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# The VS Code extension: bundles and dist/modelmill.vsix.
extension: node_modules/.installed
	npm run package

# The extension end to end in a real VS Code (code-server + chromium): installs code-server, chromium and a tiny
# model the first time (cached in extension/e2e/.cache), then runs the scenarios in extension/e2e/.
e2e: setup node_modules/.installed
	bash extension/e2e/run-all.sh

bench: setup
	$(PY) bench/auto_opt.py

clean:
	rm -rf $(VENV) .modelmill-cache models
