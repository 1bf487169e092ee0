# The two quick-start commands: `make demo` (main job) and `make test` (test suite).
# Each creates the virtual environment on first use. TORCH_SPEC picks the torch build: the default pins the
# release this project is tested with (on machines without CUDA, pip's find-links may supply the CPU wheel).
VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.serkit-installed
# The demo predicts the example clips in examples/ (see its README for attribution) with the default model shipped
# in the package (docs/model_card.md); their speakers were held out of that model's training.
EXAMPLES ?= $(sort $(wildcard examples/*.wav examples/*.flac))
# The tests' feature cache: inside the checkout (git-ignored), never the user's ~/.cache/serkit.
TEST_CACHE ?= $(CURDIR)/.cache/serkit-test

.PHONY: demo test test-fast env clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,speakers]"
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/serkit predict $(EXAMPLES)

test: $(STAMP)
	SERKIT_CACHE=$(TEST_CACHE) $(BIN)/python -m pytest -q

test-fast: $(STAMP)
	SERKIT_CACHE=$(TEST_CACHE) $(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_frontends.py

clean:
	rm -rf $(VENV) runs .pytest_cache
