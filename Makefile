# Two commands on a fresh machine with Python >= 3.11 and make:  `make demo`  and  `make test`.
# Each (re)creates .venv from pyproject.toml when it changed, then does its job.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATA   ?= $(CURDIR)/data
export DAGSTER_HOME := $(DATA)/dagster_home
export LAKE_DATA_ROOT := $(DATA)
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache

.PHONY: venv demo test test-all ui bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lake_pipeline needs Python >= 3.11, found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@# Compile the numba kernels once, at install, into $(NUMBA_CACHE_DIR): a tiny demo runs exactly the kernels
	@# (and type specialisations) the real demo runs, so the first `make demo` pays no compilation.
	@echo "warming the numba cache (once per install, about a minute)"
	@tmp=$$(mktemp -d) && ($(VENV)/bin/lake-pipeline demo --data-root $$tmp --hours 0.02 > $$tmp/warm.log 2>&1 \
		|| { tail -20 $$tmp/warm.log; echo "warning: numba cache warm-up failed; the first demo compiles instead"; }); \
		rm -rf $$tmp
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lake-pipeline demo --data-root $(DATA)

test: $(STAMP)
	$(PY) -m pytest

test-all: $(STAMP)
	$(PY) -m pytest -m ''

ui: $(STAMP)
	$(VENV)/bin/lake-pipeline dagster-home --data-root $(DATA)
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: $(STAMP)
	$(PY) -m pytest lake_pipeline_tests/bench -m bench -s -p no:cacheprovider

clean:
	rm -rf $(VENV) .numba_cache .pytest_cache
