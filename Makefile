# `make demo` and `make test` work on a fresh machine with Python 3.11, pip and
# the Debian archive: each creates .venv if missing and installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# One OpenMP/BLAS thread per process: oversubscription is catastrophic for xTB.
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export OMP_STACKSIZE ?= 1G

.PHONY: demo test system-deps clean

# One coordinator (mostly asleep) and one worker per core.
NPROC := $(shell nproc 2>/dev/null || echo 2)

demo: $(STAMP)
	$(BIN)/mpiexec -n $$(( $(NPROC) + 1 )) $(BIN)/airss-msc demo -o demo-output

test: $(STAMP)
	$(BIN)/python -m pytest -q

# tblite needs the GNU OpenMP runtime from the Debian archive.
system-deps:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libgomp\.so\.1'; then \
		echo "installing libgomp1 (needed by tblite)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libgomp1; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python system-deps
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,xtb]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) demo-output .pytest_cache
