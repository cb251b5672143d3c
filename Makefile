# memstrata: the two commands on a fresh machine are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# llama-cpp-python compiles llama.cpp from source (~6 min once; pip caches the wheel).
# A portable build: the default native build may use AVX-512 and crash on other CPUs.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
# onnxruntime writes a device id and queues telemetry at import unless this is set.
export ORT_DISABLE_TELEMETRY := 1

.PHONY: install demo test lint bench clean hostile

install: $(STAMP)

$(STAMP): pyproject.toml bench/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	@# memstrata with every extra, and the benchmark harness (bench/, not in the wheel) beside it.
	$(BIN)/python -m pip install --quiet -e ".[all,test]" -e "./bench[plot]"
	@touch $(STAMP)

demo: install
	$(BIN)/python examples/long_horizon_demo.py

lint: install
	$(BIN)/ruff check plugin adapters schemas tests examples bench
	@# mypy sees the import package as it is installed: a symlinked memstrata/ tree, with the
	@# tests and the bench harness (bench/memstrata_bench) beside it.
	@rm -rf .typecheck && mkdir -p .typecheck/memstrata
	@for f in plugin/*.py plugin/py.typed plugin/testing; do ln -s ../../$$f .typecheck/memstrata/; done
	@ln -s ../../schemas .typecheck/memstrata/schemas && ln -s ../../adapters .typecheck/memstrata/adapters
	@ln -s ../tests .typecheck/tests && ln -s ../bench/memstrata_bench .typecheck/memstrata_bench
	cd .typecheck && ../$(BIN)/mypy --config-file ../pyproject.toml memstrata tests memstrata_bench

test: install lint
	$(BIN)/python -m pytest

# Hostile input and secrets (issue 7) with the thorough hypothesis profile: >10,000 examples.
HOSTILE_TESTS := tests/integration/test_hostile_input.py tests/integration/test_hostile_http.py \
	tests/integration/test_secrets.py
hostile: install
	MEMSTRATA_HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest $(HOSTILE_TESTS) -q \
		-p no:cacheprovider --hypothesis-show-statistics

bench: install
	$(BIN)/memstrata bench store --episodes 100000 --queries 1000 --json
	$(BIN)/memstrata bench model --json

clean:
	rm -rf $(VENV) build dist *.egg-info .typecheck
