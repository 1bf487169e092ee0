# The two quick-start commands: `make demo` (main job) and `make test` (test suite).
# Each creates the virtual environment on first use. TORCH_SPEC picks the torch build: the default pins the
# release this project is tested with (on machines without CUDA, pip's find-links may supply the CPU wheel).
VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.serkit-installed
CORPORA ?= ../shared/corpora
# Example clips for the demo: RAVDESS speech (CC BY-NC-SA 4.0, Livingstone & Russo 2018) from the shared copy.
# The demo model is trained on EmoDB (German), so these are clips of an unseen corpus and language.
EXAMPLES ?= $(CORPORA)/ravdess-16k/Actor_01/03-01-05-02-01-01-01.flac \
            $(CORPORA)/ravdess-16k/Actor_02/03-01-04-02-02-01-02.flac \
            $(CORPORA)/ravdess-16k/Actor_03/03-01-03-02-01-02-03.flac \
            $(CORPORA)/ravdess-16k/Actor_04/03-01-01-01-01-01-04.flac

.PHONY: demo test test-fast env clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/serkit train recipes/egemaps_svm_emodb.yaml --out runs/demo-egemaps-svm-emodb
	$(BIN)/serkit predict runs/demo-egemaps-svm-emodb $(EXAMPLES)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_frontends.py

clean:
	rm -rf $(VENV) runs .pytest_cache
