# The two commands of the README: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test test-slow lint clean grocery grocery-baseline

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[train,report,dev]"
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
