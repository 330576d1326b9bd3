# The two README commands: `make demo` and `make test`. Each builds .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Both MLflow and BentoML phone home unless told not to; this machine has no route out.
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export BENTOML_DO_NOT_TRACK := true
export SPARK_LOCAL_IP := 127.0.0.1
export PYTHONDONTWRITEBYTECODE := 1
export OMP_WAIT_POLICY := PASSIVE

.PHONY: install lint test test-fast demo bench bench-features bench-training bench-quality bench-serving bench-live bench-quality_tenants bench-quality_worlds bench-replicas bench-alerts bench-as_seen bench-soak bench-tables clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "leadradar needs Python >= 3.11, found " + sys.version'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# ruff (lint, import order, format), bandit (security) and mypy over the package as it installs (a tree of
# links, see pyproject).
TYPECHECK := .tmp/typecheck
PACKAGE_DIRS := leadradar features models training serving
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/bandit -q -c pyproject.toml -r $(PACKAGE_DIRS)
	@rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/leadradar
	@for f in leadradar/*.py; do ln -s "$(CURDIR)/$$f" $(TYPECHECK)/leadradar/; done
	@for d in features models training serving; do ln -s "$(CURDIR)/$$d" $(TYPECHECK)/leadradar/$$d; done
	cd $(TYPECHECK) && $(CURDIR)/$(PY) -m mypy --config-file $(CURDIR)/pyproject.toml -p leadradar

# Two workers by default (this machine's cores); a test file runs whole on one worker, so its module fixtures
# (servers, clusters) start once, and the files that need the session's trained model share one worker, so it is
# trained once (groups and their order: tests/conftest.py). TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2
test: lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The unit tests: no servers, no Spark, no notebooks, no test of 3 s or more; a loop of a minute or two (on the same workers).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" -x -n $(TEST_WORKERS) --dist loadfile

demo: $(STAMP)
	$(VENV)/bin/leadradar demo

bench: bench-features bench-training bench-quality bench-serving bench-live bench-alerts bench-tables

# Explicit rules: make skips pattern rules for .PHONY targets.
BENCHES := features training quality serving live quality_tenants quality_worlds replicas alerts as_seen soak store_read
$(addprefix bench-,$(BENCHES)): bench-%: $(STAMP)
	$(PY) -m benchmarks.$*

# The public tables come from a package (pyproject's `bench` extra), installed beside the project's own.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	@touch $(BENCH_STAMP)
bench-tables: $(BENCH_STAMP)
	$(PY) -m benchmarks.tables

# The serving benchmark drives the service with wrk too, installed here where that is possible (root, Debian).
bench-serving: bench-wrk
.PHONY: bench-wrk
bench-wrk:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -q && apt-get install -y -q --no-install-recommends wrk; } || \
	  echo "wrk is not installed: the serving benchmark measures with its Python client only"

clean:
	rm -rf .leadradar demo_data .pytest_cache .hypothesis spark-warehouse

# Notebooks for data scientists (README "For data scientists"): JupyterLab on this machine only.
.PHONY: notebooks notebooks-sync
NB_STAMP := $(VENV)/.notebooks-installed

$(NB_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,notebooks]'
	@touch $(NB_STAMP)

notebooks: $(NB_STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=notebooks

# After editing in JupyterLab: bring each .py and .ipynb pair level, then store the .ipynb without outputs.
notebooks-sync: $(NB_STAMP)
	$(VENV)/bin/jupytext --sync notebooks/[0-9]*.ipynb
	$(VENV)/bin/jupyter nbconvert --log-level=WARN --clear-output --inplace notebooks/[0-9]*.ipynb
	$(VENV)/bin/jupytext --sync notebooks/[0-9]*.ipynb
