# Two entry points: `make demo` and `make test`. Both create .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	# The CPU build of PyTorch; an unpinned torch would pull several GB of CUDA libraries.
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	FORGEML_HOME=$(CURDIR)/.forgeml-demo $(PY) examples/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest -q

test: lint typecheck unit

bench: $(STAMP)
	$(PY) benchmarks/tracking.py
	$(PY) benchmarks/data.py
	$(PY) benchmarks/features.py
	$(PY) benchmarks/pipelines.py
	$(PY) benchmarks/serving.py
	$(PY) benchmarks/batch_scoring.py
	$(PY) benchmarks/streaming.py

clean:
	rm -rf $(VENV) .forgeml-demo .pytest_cache .mypy_cache .ruff_cache
