# The two commands of the README: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test test-slow lint clean grocery grocery-baseline bench resolution-sweep pi-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[train,report,dev,bench]"
	touch $(STAMP)

install: $(STAMP)

## demo: train + prune + QAT on the bundled grocery subset, export, classify, compare
demo: $(STAMP)
	$(BIN)/edgeshop-demo --out runs/demo --force

## test: lint and the test suite (slow, real-data tests excluded)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

## test-slow: the long tests too (needs ../shared/datasets for the real-data ones)
test-slow: $(STAMP)
	$(BIN)/pytest -q -m "slow or not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf runs .pytest_cache .ruff_cache

GROCERY ?= ../shared/datasets/grocery_store

## grocery: the shipped grocery model's recipe (needs the full dataset at GROCERY)
grocery: $(STAMP)
	$(BIN)/python tools/grocery_recipe.py --dataset $(GROCERY) $(ARGS)

## grocery-baseline: the from-scratch seed_cnn on the same data (figures for the model card)
grocery-baseline: $(STAMP)
	$(BIN)/python tools/grocery_recipe.py --dataset $(GROCERY) --arch seed_cnn $(ARGS)

## bench: latency of the shipped model vs float32, ONNX Runtime int8 and Keras; camera-loop fps.
## Rewrites bench/results.json and the README's bench table. Keep the machine otherwise idle.
bench: $(STAMP)
	$(BIN)/python tools/bench_suite.py $(ARGS)

## resolution-sweep: accuracy vs int8 latency at 160/192/224 px (needs the full dataset at GROCERY)
resolution-sweep: $(STAMP)
	$(BIN)/python tools/resolution_sweep.py --dataset $(GROCERY) $(ARGS)

## pi-check: the runtime installed with `pip install .` and classifying on emulated arm64 (the Raspberry
## Pi's architecture), compared with x86. Needs root; debootstraps Debian roots into EDGESHOP_PI_CACHE
## (default ~/.cache/edgeshop-pi, outside the repository); the first run takes tens of minutes.
pi-check: $(STAMP)
	$(BIN)/python tools/pi_check.py $(ARGS)
