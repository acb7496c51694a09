# Armoire: `make run` starts the simulated cabinet with its touchscreen; `make test` runs
# everything CI runs. Both create .venv and install what they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit venv system-deps clean diagrams firmware screenshots

$(STAMP): pyproject.toml
	@PYTHON=$(PYTHON) bash deploy/ci-system-deps.sh --venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests need (python3-venv, browser for the UI tests, systemd-analyze,
# shellcheck); .venv asks for python3-venv alone.
system-deps:
	@PYTHON=$(PYTHON) bash deploy/ci-system-deps.sh

run: $(STAMP)
	$(BIN)/armoire run --sim --config sim/demo/cabinet.toml

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: $(STAMP) system-deps lint typecheck unit

diagrams: $(STAMP)
	$(BIN)/armoire docs diagrams --out docs/diagrams

screenshots: $(STAMP) system-deps
	$(BIN)/python tools/screenshots.py --out docs/screenshots

# Copy firmware/ to a drawer board: make firmware PORT=/dev/ttyACM0 DRAWER=A
firmware:
	@test -n "$(PORT)" -a -n "$(DRAWER)" || { echo "usage: make firmware PORT=/dev/ttyACM0 DRAWER=A"; exit 2; }
	bash firmware/flash.sh "$(PORT)" "$(DRAWER)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
