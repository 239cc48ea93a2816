# Two entry points: `make quickstart` (the main job) and `make test` (the whole suite).
# Each creates .venv on first use; later runs reuse it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vlkd-installed

.PHONY: quickstart test setup clean-venv

$(STAMP): pyproject.toml requirements-bundled.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned to the builds served from local disk on our machines
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps -r requirements-bundled.txt
	touch $(STAMP)

setup: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/vlkd quickstart --out runs/quickstart

# one pytest worker per core (at most 4: each holds its own torch; an idle one takes queued tests from the
# others); tests/conftest.py splits the threads
test: $(STAMP)
	$(BIN)/python -m pytest tests -n auto --maxprocesses 4 --dist worksteal

clean-venv:
	rm -rf $(VENV)
