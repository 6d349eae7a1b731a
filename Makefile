# Everything a fresh machine needs: `make demo` runs ModelMill on the shipped sample, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MODELMILL := $(VENV)/bin/modelmill
DEMO_OUT ?= models/smollm2-int4

.PHONY: setup demo test test-fast bench clean

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

# The default suite plus the slow end-to-end tests on the real samples.
test: setup
	$(PY) -m pytest -q

# Quick loop while developing: skips the slow end-to-end tests.
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) bench/auto_opt.py

clean:
	rm -rf $(VENV) .modelmill-cache models
