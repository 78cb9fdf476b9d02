# Two commands on a fresh machine: `make run` and `make test`. Both create the venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DURATION ?= 120

.PHONY: run test lint format bench snapshot clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/twin run configs/default_line.toml --duration $(DURATION) --report out/report.json

test: $(STAMP)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		echo "note: Chromium is not installed, so the browser HMI tests are skipped (apt-get install chromium)"
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check twin tests examples
	$(BIN)/ruff format --check twin tests examples
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format twin tests examples
	$(BIN)/ruff check --fix twin tests examples

snapshot: $(STAMP)
	$(BIN)/twin snapshot configs/default_line.toml --out docs/line.png

clean:
	rm -rf $(VENV) out build *.egg-info
