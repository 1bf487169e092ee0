# The two quick-start commands: `make demo` (main job) and `make test` (test suite).
# Each creates the virtual environment on first use. TORCH_SPEC picks the torch build: the default pins the
# release this project is tested with (on machines without CUDA, pip's find-links may supply the CPU wheel).
VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.serkit-installed
CORPORA ?= ../shared/corpora
# Example clips for the demo: four EmoDB utterances (Burkhardt et al. 2005) of speaker 03 (anger, sadness,
# happiness, neutral), read from the shared copy. They are predicted by the fold model that never saw
# speaker 03 in training or validation, so the demo shows speaker-independent predictions.
DEMO_RUN ?= runs/demo-egemaps-svm-emodb
DEMO_MODEL ?= $(DEMO_RUN)/folds/fold01-test=emodb-03/model.pt
EXAMPLES ?= $(CORPORA)/emodb/wav/03a01Wa.wav $(CORPORA)/emodb/wav/03a02Ta.wav \
            $(CORPORA)/emodb/wav/03a01Fa.wav $(CORPORA)/emodb/wav/03a01Nc.wav

.PHONY: demo test test-fast env clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/serkit train recipes/egemaps_svm_emodb.yaml --out $(DEMO_RUN)
	$(BIN)/serkit predict $(DEMO_MODEL) $(EXAMPLES)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_frontends.py

clean:
	rm -rf $(VENV) runs .pytest_cache
