# cmf-foundation: the two commands a new user runs are `make demo` and `make test`.
# Needs only python3 (3.11+) and make; uv is bootstrapped into .tools/ when missing.

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := --extra server --extra postgres --extra gpu --extra recommend --extra plot \
          --extra airflow --extra prefect --extra kubeflow --extra dev
# ml-metadata (the MLMD interop tests) pins protobuf<5 and attrs<24: it gets its own environment
MLMD_VENV := .venv-mlmd
MLMD_EXTRAS := --extra mlmd --extra server --extra postgres --extra recommend --extra dev \
               --group mlmd-tests
export UV_PYTHON := $(PYTHON)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
export DO_NOT_TRACK := 1

.PHONY: help env env-mlmd demo test test-fast lint system-deps clean

help:
	@echo "make demo   - set up the environment and run the cross-site demo (embedded SQLite stores)"
	@echo "make test   - set up the environment, start what the tests need, run the test suite"
	@echo "make lint   - ruff"

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen $(EXTRAS)
	touch $@

env: $(VENV)/.synced

$(MLMD_VENV)/.synced: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(MLMD_VENV) $(UV) sync --frozen $(MLMD_EXTRAS)
	touch $@

env-mlmd: $(MLMD_VENV)/.synced

# System packages the tests use: PostgreSQL server binaries (the suite starts its own server) and
# Chromium (the web UI tests drive it with Playwright). Installed with apt-get when missing.
system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "Installing system packages:$$missing (apt-get)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: env
	$(PY) examples/demo.py

# Two pytest-xdist workers, each file on one worker (its module fixtures shared): most tests wait
# on subprocesses and servers, so two workers halve the wall time on 2 cores. TEST_WORKERS=0 runs
# the suite in one process.
TEST_WORKERS ?= 2

test: env env-mlmd system-deps
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=20 --ignore=tests/mlmd
	$(MLMD_VENV)/bin/python -m pytest -q tests/mlmd

test-fast: env
	$(PY) -m pytest -q -m "not slow" --ignore=tests/mlmd

lint: env
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(MLMD_VENV) .tools .pytest_cache demo-output
