"""Model cards (edgeshop/report/model_card_document.py): edgeshop-card on a real run, the documentation's demo block
against its figures, and each generated sentence against figures written out by hand (expected text
is literal, never built with the renderer's own format strings). The grocery study's card and its
blocks: studies/grocery/tests/test_grocery_card.py."""

from __future__ import annotations

import json
import re
import sys

import pytest
from card_figures import run_figures
from conftest import REPO

from edgeshop.cli import card as card_cli
from edgeshop.report import model_card_document as document
from edgeshop.train.config import recipe_config

sys.path.insert(0, str(REPO / "tools"))
from readme_block import read_block  # noqa: E402


def test_readme_demo_block_is_what_the_demo_figures_render():
    from demo_block import DEMO, NONDETERMINISTIC, demo_block

    other = json.loads(NONDETERMINISTIC.read_text()) if NONDETERMINISTIC.exists() else None
    assert read_block("demo") == demo_block(json.loads(DEMO.read_text()), other)


def test_card_sentences_count_images_classes_and_ratios_from_the_figures():
    figures = run_figures()
    assert document.data_sentence(figures["int8"]["val"]) == (
        "200 images, 2 of the 3 classes; the other 1 have no evaluation images)")
    notes = "\n".join(document.figure_notes(figures, "int8", "float16"))
    assert "- int8 vs float16 top-1: +0.50 points (+1 images of 200)." in notes
    assert "median latency, measured in the same process: 0.50x (1 thread), 0.40x (2 threads)." in notes
    assert "The float model before QAT (Keras, the run's own validation images): 87.00%." in notes
    limits = "\n".join(document.size_limitations(figures["int8"]["val"]))
    assert "200 images (about 100 per class): one image is 0.50 points, and 1 of the 3 classes" in limits
    # Wilson by hand: (0.875 + 1.96^2/400 -+ 1.96 * sqrt(0.875 * 0.125 / 200 + 1.96^2 / 160000)) / 1.0192
    assert "top-1 82.20%-91.39%" in limits
    recipe = " ".join(document.recipe_lines(recipe_config(figures["recipe"]), figures["train_metrics"]))
    assert "`efficientnet_lite0` initialised from ImageNet, input 288x288" in recipe
    assert "The float phases train at 240x240" in recipe and "14 epochs training the whole network" in recipe
    assert "2 epoch(s) of int8 quantization-aware training (lr 2e-05)" in recipe  # the config's default qat_lr
    assert "Distilled" not in recipe
    taught = {**figures["recipe"], "teacher": ["runs/a", "b.tflite"], "distill_temperature": 2.0}
    recipe = " ".join(document.recipe_lines(recipe_config(taught), figures["train_metrics"]))
    assert ("Distilled from an ensemble of 2 teachers (mean of their softened probabilities): `runs/a`, "
            "`b.tflite`; temperature 2, soft-target weight 0.5.") in recipe
    one_teacher = recipe_config({**figures["recipe"], "teacher": "runs/a"})
    recipe = " ".join(document.recipe_lines(one_teacher, figures["train_metrics"]))
    assert "Distilled from the teacher `runs/a`; temperature 4" in recipe


def test_edgeshop_card_writes_the_card_of_a_run_from_its_own_figures(pipeline, synthetic_data, tmp_path, capsys):
    out = tmp_path / "card" / "MODEL_CARD.md"
    out.parent.mkdir()
    args = [str(pipeline["run"]), str(pipeline["int8"]), "--reference", str(pipeline["float16"]),
            "--data", str(synthetic_data["test"]), "--threads", "1", "--runs", "5", "--out", str(out)]
    assert card_cli.main(args) == 0
    figures = json.loads((out.parent / "figures.json").read_text())
    text = out.read_text()
    # the card is a rendering of the figures file, nothing else
    assert text == document.render_model_card_document(figures, recipe_config(figures["recipe"]))
    val = figures["model"]["val"]
    assert val["n"] == 36 and val["top1"] > 0.8
    assert figures["data_report"] == {"train_images": 96, "val_images": 24, "classes": 3}
    assert figures["command"].startswith("edgeshop-card ") and "--runs 5" in figures["command"]
    assert figures["model"]["audit"]["fully_integer"] and not figures["reference"]["audit"]["fully_integer"]
    row = re.search(r"^\| `model_int8.tflite` \| ([\d.]+)% \| ([\d.]+)% \| - \| ([\d.]+) \|", text, re.M)
    assert row and float(row.group(1)) == pytest.approx(100 * val["top1"], abs=0.005)
    assert "(36 images, 3 of the 3 classes)" in text and "96 training images" in text
    assert "magnitude pruning to 50% sparsity" in text and "quantization-aware training" in text
    assert capsys.readouterr().out.startswith(f"wrote {out}")
    assert card_cli.main(args) == 2  # a second run does not overwrite the card without --force
    assert "already exists; pass --force" in capsys.readouterr().err
    assert card_cli.main([str(tmp_path), str(pipeline["int8"]), "--data", str(synthetic_data["test"])]) == 2
    assert "not a finished edgeshop run directory" in capsys.readouterr().err


