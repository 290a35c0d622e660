# dnnpart: `make demo` solves a bundled instance; `make test` runs the test suite.
# Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE := $(VENV)/.installed-base
FULL := $(VENV)/.installed-full
# torch is pinned to the CPU build 2.13.0 (see README, "Dependencies").
EXTRAS := dev,torch,onnx,notebooks,ray
PYTEST_ARGS ?=

.PHONY: demo test test-slow lint reproduce bench schema clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(BASE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(BASE)

$(FULL): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $(BASE) $(FULL)

demo: $(BASE)
	$(BIN)/dnnpart solve instances/examples/alexnet-lte-phone-energy.yaml

test: $(FULL)
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

test-slow: $(FULL)
	$(BIN)/python -m pytest -n 2 -q -m slow $(PYTEST_ARGS)

lint: $(BASE)
	$(BIN)/ruff check dnnpart formulation solvers toolchain tests benchmarks paper_reproductions
	$(BIN)/mypy

reproduce: $(BASE)
	$(BIN)/python -m paper_reproductions.report

schema: $(BASE)
	$(BIN)/dnnpart schema --out formulation/instance.schema.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
