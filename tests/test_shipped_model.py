"""The shipped grocery model (models/grocery/) as a user gets it: its labels, that it is fully
integer, the card inside it, and top-1 on the bundled demo images; examples/classify_photos.py
on it. Behaviour only: the files may be re-exported (e.g. uint8 instead of int8 I/O)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

from edgeshop import Classifier
from edgeshop.cli.demo import DEFAULT_DATA as DEMO_DATA
from edgeshop.data import discover
from edgeshop.report.evaluate import predict
from edgeshop.report.metrics import top_k_accuracy
from edgeshop.runtime.audit import audit_model

GROCERY = REPO / "models" / "grocery"
DEMO_TEST = DEMO_DATA / "test"
# the fast model is a level of the grocery study's channel sweep, which records its figures
SWEEP = REPO / "studies" / "grocery" / "figures" / "channel_pruning.json"
# 52 demo images of 10 classes; both shipped files get 51 right (measured when this floor was set).
# The images belong to the official val split, on which the recipe was chosen: a floor, not a figure.
TOP1_FLOOR = 0.90


def test_bundled_demo_data_is_what_the_readme_says():
    train, test = discover(DEMO_TEST.parent / "train"), discover(DEMO_TEST)
    assert (len({s.label for s in train}), len(train), len(test)) == (10, 240, 52)


@pytest.fixture(scope="module")
def figures() -> dict:
    return json.loads((GROCERY / "figures_efficientnet_lite0.json").read_text())


SHIPPED_MODELS = ["grocery_int8.tflite", "grocery_fp16.tflite", "grocery_int8_fast.tflite"]


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_shipped_model_carries_its_labels_and_card(name, figures):
    classifier = Classifier(GROCERY / name, threads=1)
    assert len(classifier.labels) == 81 == len(set(classifier.labels))
    assert {s.label for s in discover(DEMO_TEST)} <= set(classifier.labels)  # the demo's classes, same spelling
    assert classifier.card.arch == figures["arch"] == "efficientnet_lite0"
    size = figures["recipe"]["image_size"]
    if name == "grocery_int8_fast.tflite":  # a sweep level may run at a smaller input; the sweep records it
        sweep = json.loads(SWEEP.read_text())
        size = sweep["models"][sweep["chosen"]].get("input_px", size)
    assert (classifier.card.input.height, classifier.card.input.width) == (size, size)
    assert classifier.card.input.interpolation == figures["recipe"]["interpolation"]
    assert classifier.card.input.normalization_in_graph


@pytest.mark.parametrize("name", ["grocery_int8.tflite", "grocery_int8_fast.tflite"])
def test_shipped_int8_models_are_fully_integer_and_the_float_reference_is_not(name):
    int8 = audit_model((GROCERY / name).read_bytes())
    assert int8["fully_integer"], (int8["float_tensors"][:5], int8["float_ops"])
    assert int8["input"]["dtype"] in ("int8", "uint8") and int8["output"]["dtype"] in ("int8", "uint8")
    assert Classifier(GROCERY / name).card.quantization.endswith("int8")
    assert not audit_model((GROCERY / "grocery_fp16.tflite").read_bytes())["fully_integer"]


def test_the_fast_model_is_the_channel_pruned_one_and_runs_faster():
    """grocery_int8_fast.tflite: the sweep's chosen level, narrower (its card records the
    channels kept), and faster than the shipped model here, timed interleaved."""
    from edgeshop.runtime.bench import time_models

    sweep = json.loads(SWEEP.read_text())
    chosen = sweep["models"][sweep["chosen"]]
    assert chosen["shipped_as"] == "models/grocery/grocery_int8_fast.tflite"
    fast, shipped = GROCERY / "grocery_int8_fast.tflite", GROCERY / "grocery_int8.tflite"
    assert fast.stat().st_size == chosen["size_bytes"] < shipped.stat().st_size
    channels = Classifier(fast).card.extra["training"]["channels"]
    assert channels["kept"] == chosen["channels"]["kept"] < channels["channels"]
    stats = time_models({"fast": fast.read_bytes(), "shipped": shipped.read_bytes()}, threads=1, runs=60)
    # The sweep's ratios come from the CPU they were measured on (the 0.60x level read 0.576x on
    # an AMD EPYC and ~0.66-0.68x on an Intel Xeon with AVX-512), so the bound is the sweep's target
    # plus timing noise, not the level's figure: a wrong file (the shipped one, ~1.0x) still fails it.
    assert stats["fast"].p50_ms / stats["shipped"].p50_ms < sweep["target_ratio"] + 0.1


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_shipped_model_top1_on_the_bundled_demo_images(name):
    samples = discover(DEMO_TEST)
    assert len(samples) == 52
    result = predict(Classifier(GROCERY / name, threads=2), samples, show_progress=False)
    assert not result.skipped
    assert top_k_accuracy(result.truth, result.scores, 1) >= TOP1_FLOOR
    assert top_k_accuracy(result.truth, result.scores, 5) >= 0.98


def test_classify_photos_example_names_each_photo_and_its_product():
    result = subprocess.run([sys.executable, str(REPO / "examples" / "classify_photos.py"), str(DEMO_TEST / "Banana"),
                             "--top-k", "2"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [f"Banana_{i:03d}.jpg" for i in range(1, 7)]
    top = [line.split(": ")[1].split(",")[0].split()[0] for line in lines]
    assert top.count("Banana") >= 5
    assert all(line.count(",") == 1 for line in lines)  # --top-k 2: two labels per photo
