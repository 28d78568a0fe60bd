# The two commands a new machine needs: `make demo` and `make test`.
# Everything else here is what those two are made of.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-unit test-fast lint system-deps venv clean bench bench-migrate chaos chaos-migrate roots

# Create the virtual environment from the hash-locked requirements.
$(STAMP): requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests and the demo use (PostgreSQL server binaries,
# buildah/debootstrap for the image test, kubectl/kustomize, docker-compose).
system-deps:
	bash scripts/install-system-deps.sh

# The Debian trixie roots the tests build on demand (Python 3.13 for Django 6.0,
# PostgreSQL 17 with pgvector, the image's stand-in base): cached in
# /var/tmp/preflight-trixie, never in the repository.  Needs root and debootstrap.
roots:
	bash scripts/trixie.sh server

# Start a throwaway PostgreSQL, run the preflight against it, show the plans.
demo: system-deps $(STAMP)
	$(BIN)/python scripts/demo.py

lint: $(STAMP)
	$(BIN)/ruff check preflight tests scripts benchmarks
	$(BIN)/ruff format --check preflight tests scripts benchmarks
	$(BIN)/mypy --strict preflight tests scripts benchmarks

# The whole suite, slow image and manifest tests included (what CI runs), on
# WORKERS processes a file at a time (pytest-xdist): most tests wait on servers,
# so two workers on two cores take about half the serial time.  WORKERS=0 runs it in one.
WORKERS ?= 2
test: system-deps lint
	$(BIN)/pytest -n $(WORKERS) --dist loadfile --no-loadscope-reorder --cov --cov-report=term

# The unit tier (tests/unit): pure logic and in-process runs of the CLI, no server, no
# root; seconds.  A unit test that asks for a server fixture fails (tests/conftest.py).
test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

# Everything but the tests marked slow.
test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Benchmarks (not part of `make test`; a smoke of them is): writes benchmarks/RESULTS.md.
bench: system-deps $(STAMP)
	$(BIN)/python -m benchmarks.run

# The migrate runner's cost against `manage.py migrate` and `migrate --check`
# (app venvs as in the tests): rewrites its section of benchmarks/RESULTS.md.
bench-migrate: system-deps $(STAMP)
	$(BIN)/python -m benchmarks.run migrate-cost

# Randomised fault injection (not part of `make test`; a smoke of it is): rewrites the
# chaos section of benchmarks/RESULTS.md.  CHAOS_RUNS=n for fewer or more runs.
CHAOS_RUNS ?= 500
chaos: system-deps $(STAMP)
	$(BIN)/python -m benchmarks.run chaos --chaos-runs $(CHAOS_RUNS)

# Concurrent migrate runners (3-5 a run) under randomised faults: rewrites the migrate
# chaos section of benchmarks/RESULTS.md.  Needs root (the freeze uses TCP repair mode).
MIGRATE_CHAOS_RUNS ?= 200
chaos-migrate: system-deps $(STAMP)
	$(BIN)/python -m benchmarks.run migrate-chaos --chaos-runs $(MIGRATE_CHAOS_RUNS)
