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

.PHONY: install test demo bench bench-features bench-training bench-quality bench-serving clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "leadradar needs Python >= 3.11, found " + sys.version'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/leadradar demo

bench: bench-features bench-training bench-quality bench-serving

bench-%: $(STAMP)
	$(PY) -m benchmarks.$*

clean:
	rm -rf .leadradar demo_data .pytest_cache .hypothesis spark-warehouse
