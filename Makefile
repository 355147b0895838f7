# Two commands do all set-up on a fresh machine:
#   make run   - create .venv, install, index the shipped corpus if needed, start the chat UI
#   make test  - create .venv, install (plus a headless Chromium for the browser test), run the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install run test test-all bench browser clean-store

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU torch first, so nothing below can pull a multi-GB CUDA build.
	$(BIN)/pip install torch==2.13.0
	# llama-cpp-python builds from source the first time (about 7 minutes on 2 cores); pip caches the wheel.
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/assistant serve --ingest-if-empty

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: $(STAMP) browser
	$(BIN)/python -m pytest -m "slow or not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/answer.py
	$(BIN)/python benchmarks/summary.py

clean-store:
	rm -rf store/chroma store/bm25
