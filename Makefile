# `make demo` and `make test` create or reuse .venv and install what they need first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.waveforge-installed

.PHONY: demo test test-slow bench clean-venv

$(STAMP): pyproject.toml constraints.txt
	@bash scripts/ensure-fluidsynth.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/waveforge demo

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(VENV)/bin/waveforge bench

clean-venv:
	rm -rf $(VENV)
