# `make demo` and `make test` work on a fresh machine with Python 3.11, pip and
# the Debian archive: each creates .venv if missing and installs the exact
# versions tested (requirements.lock), then the package itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# One OpenMP/BLAS thread per process: oversubscription is catastrophic for xTB.
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export OMP_STACKSIZE ?= 1G

.PHONY: demo msc399 test test-fast lint test-latest bench-quick bench-doc lock system-deps clean

# One coordinator (mostly asleep) and one worker per core.
NPROC := $(shell nproc 2>/dev/null || echo 2)

demo: $(STAMP)
	$(BIN)/mpiexec -n $$(( $(NPROC) + 1 )) $(BIN)/airss-msc demo -o demo-output

# The MSC-399 study in its reduced (laptop) mode: analysis/msc399/report/report.html. One process
# on every core: its longest step is one TDA-TDDFT run, which threads well.
msc399: $(STAMP)
	$(BIN)/airss-msc study analysis/msc399/msc399.toml --mode reduced --threads $(NPROC)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The fast loop: everything but real xTB/ML/DFT/MPI runs (marked slow).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Lint (CI runs it before the tests): ruff's rules and formatting over the repository, mypy over
# airss_msc/ (settings in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The newest versions the ranges in pyproject.toml allow (not in CI): catches upstream drift.
test-latest: | system-deps
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install -q --upgrade pip
	.venv-latest/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e '.[test,xtb,dask]'
	.venv-latest/bin/python -m pytest -q

# The API reference (HTML, pdoc) from the docstrings into docs/api/; any warning is an error.
.PHONY: docs
docs: $(STAMP)
	$(BIN)/python -W error docs/build_api.py docs/api

# Headline speed figures in a few minutes (compare with BENCHMARKS.md).
bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks.quick

# BENCHMARKS.md from benchmarks/narrative.md and the tables the scripts wrote to benchmarks/out/.
bench-doc: $(STAMP)
	$(BIN)/python -m benchmarks.assemble_benchmarks

# Regenerate the lock from the ranges (then run `make test` on it before committing).
lock:
	$(PYTHON) -m venv .venv-tools
	.venv-tools/bin/python -m pip install -q pip-tools
	.venv-tools/bin/pip-compile -q --strip-extras --extra test --extra xtb --extra dask --no-emit-index-url \
		--no-emit-find-links -c lock-constraints.txt -o requirements.lock pyproject.toml
	sed -i -E 's/^([A-Za-z0-9_.-]+==[0-9][0-9a-z.]*)\+[A-Za-z0-9.]+/\1/' requirements.lock

# tblite needs the GNU OpenMP runtime from the Debian archive.
system-deps:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libgomp\.so\.1'; then \
		echo "installing libgomp1 (needed by tblite)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libgomp1; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml requirements.lock | $(BIN)/python system-deps
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

clean:
	rm -rf $(VENV) .venv-latest .venv-tools demo-output .pytest_cache
