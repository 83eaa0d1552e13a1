"""Model cards (edgeshop/report/card.py): edgeshop-card on a real run, the shipped grocery card
and README block against the figures files they are rendered from, and each generated sentence
against figures written out by hand (expected text is literal, never built with the renderer's
own format strings)."""

from __future__ import annotations

import json
import re
import sys

import pytest
from conftest import REPO

from edgeshop.cli import card as card_cli
from edgeshop.report import card

sys.path.insert(0, str(REPO / "tools"))
from readme_block import read_block  # noqa: E402
from render_model_card import (  # noqa: E402
    bench_ratio_sentence,
    grocery_card,
    load_all,
    readme_summary,
    recipe_changes,
    short_card,
    variant_rows,
)


def test_shipped_card_and_readme_block_are_what_the_figures_files_render():
    """Edit a figure by hand, or change a figures file without re-rendering, and this fails:
    rerun `python studies/grocery/render_model_card.py`."""
    files = load_all()
    assert (REPO / "models" / "grocery" / "README.md").read_text() == short_card(files[0], files[1], files[-1])
    assert (REPO / "studies" / "grocery" / "model-card-details.md").read_text() == grocery_card(*files)
    assert read_block("grocery") == readme_summary(files[0], files[1], files[-1])


def test_readme_demo_block_is_what_the_demo_figures_render():
    from demo_block import DEMO, NONDETERMINISTIC, demo_block

    other = json.loads(NONDETERMINISTIC.read_text()) if NONDETERMINISTIC.exists() else None
    assert read_block("demo") == demo_block(json.loads(DEMO.read_text()), other)


def _model(top1: float, coarse: float, n: int = 200, ms: tuple[float, float] = (7.0, 4.0)) -> dict:
    per_class = [{"label": "a", "recall": 1.0, "support": n // 2}, {"label": "b", "recall": 0.5, "support": n // 2},
                 {"label": "c", "recall": 0.0, "support": 0}]
    return {"file": "m.tflite", "size_bytes": 4_070_000,
            "val": {"n": n, "top1": top1, "top5": 0.99, "coarse_top1": coarse, "per_class": per_class,
                    "most_confused": [{"true": "b", "predicted": "a", "count": 3}], "ece": 0.1, "macro_recall": 0.75},
            "audit": {"fully_integer": True, "input": {"dtype": "int8", "scale": 1.0, "zero_point": -128},
                      "weight_sparsity": 0.0},
            "latency_1t": {"p50_ms": ms[0], "runs": 200}, "latency_2t": {"p50_ms": ms[1], "runs": 200}}


def _figures(top1: float = 0.875, coarse: float = 0.92) -> dict:
    return {"recipe": {"arch": "efficientnet_lite0", "image_size": 288, "train_image_size": 240, "epochs": 14,
                       "select_best_epoch": False, "qat": True},
            "train_metrics": {"phases": ["head", "train", "qat"], "val_top1_float": 0.87},
            "int8": _model(top1, coarse), "float16": _model(0.87, 0.91, ms=(14.0, 10.0)),
            "wall_seconds_train_and_export": 2280.0, "machine": {"cores": 2, "cpu": "AMD EPYC", "python": "3.11"}}


def test_readme_summary_states_the_gap_to_the_published_best_in_the_right_direction():
    text = readme_summary(_figures(top1=0.875, coarse=0.92), None)
    assert "| Lite0 int8 | 87.50% | 99.00% | 92.00% | 4.07 | 7.00 | 4.00 |" in text
    assert "the int8 model is 1.46 points above it on fine classes and\n0.01 points above it on coarse" in text
    assert "classifies photos into the 3 fine classes" in text
    lower = readme_summary(_figures(top1=0.85, coarse=0.9), None)
    assert "1.04 points below it on fine classes and\n1.99 points below it on coarse" in lower
    assert "fine-tuned at 240 px and QAT at 288 px" in text and "(200 images, never trained on" in text


def test_the_model_shipped_before_is_named_with_its_recipe_change_and_the_gain():
    from render_model_card import history_lines

    round1 = _figures(top1=0.875)
    round2 = _figures(top1=0.90)
    round2["recipe"] = {**round1["recipe"], "teacher": ["runs/a", "runs/b"], "distill_weight": 0.5}  # the default
    text = "\n".join(history_lines(round2, round1))
    assert "changes from it: `teacher` default -> ['runs/a', 'runs/b']." in text
    assert "the int8 model moved +2.50 points (+5 images)" in text
    assert "| Lite0 round 1 int8 | 87.50% |" in text
    summary = readme_summary(round2, None, round1)
    assert "distilled from 2 teachers" in summary and "Round 1 (`configs/grocery_round1.json`" in summary
    assert "scored 87.50% int8 top-1" in summary
    assert "Round 1" not in readme_summary(round1, None)
    header = variant_rows(round1, {}, base="round-1")[0]
    assert header.startswith("| variant | change from the round-1 recipe |")


def test_card_sentences_count_images_classes_and_ratios_from_the_figures():
    figures = _figures()
    assert card.data_sentence(figures["int8"]["val"]) == (
        "200 images, 2 of the 3 classes; the other 1 have no evaluation images)")
    notes = "\n".join(card.figure_notes(figures, "int8", "float16"))
    assert "- int8 vs float16 top-1: +0.50 points (+1 images of 200)." in notes
    assert "median latency, measured in the same process: 0.50x (1 thread), 0.40x (2 threads)." in notes
    assert "The float model before QAT (Keras, the run's own validation images): 87.00%." in notes
    limits = "\n".join(card.size_limitations(figures["int8"]["val"]))
    assert "200 images (about 100 per class): one image is 0.50 points, and 1 of the 3 classes" in limits
    # Wilson by hand: (0.875 + 1.96^2/400 -+ 1.96 * sqrt(0.875 * 0.125 / 200 + 1.96^2 / 160000)) / 1.0192
    assert "top-1 82.20%-91.39%" in limits
    bench = {"threads": {"1": {"latency": {"litert_int8": {"p50_ms": 7.0}, "litert_float16": {"p50_ms": 15.0}}},
                         "2": {"latency": {"litert_int8": {"p50_ms": 3.5}, "litert_float16": {"p50_ms": 7.0}}}}}
    assert bench_ratio_sentence(bench) == "0.47x (1 thread), 0.50x (2 threads)"
    recipe = " ".join(card.recipe_lines(figures["recipe"], figures["train_metrics"]))
    assert "`efficientnet_lite0` initialised from ImageNet, input 288x288" in recipe
    assert "The float phases train at 240x240" in recipe and "14 epochs training the whole network" in recipe
    assert "2 epoch(s) of int8 quantization-aware training (lr 2e-05)" in recipe  # the config's default qat_lr
    assert "Distilled" not in recipe
    taught = {**figures["recipe"], "teacher": ["runs/a", "b.tflite"], "distill_temperature": 2.0}
    recipe = " ".join(card.recipe_lines(taught, figures["train_metrics"]))
    assert ("Distilled from an ensemble of 2 teachers (mean of their softened probabilities): `runs/a`, "
            "`b.tflite`; temperature 2, soft-target weight 0.5.") in recipe
    recipe = " ".join(card.recipe_lines({**figures["recipe"], "teacher": "runs/a"}, figures["train_metrics"]))
    assert "Distilled from the teacher `runs/a`; temperature 4" in recipe


def test_variant_table_names_each_recipe_change_against_the_shipped_run():
    assert recipe_changes({"epochs": 14, "seed": 0}, {"epochs": 16, "seed": 0, "mix": 0.5}) == (
        "`epochs` 14 -> 16, `mix` default -> 0.5")
    shipped, variant = _figures(), _figures(top1=0.86, coarse=0.9)
    variant["recipe"] = {**variant["recipe"], "epochs": 99}
    header, _, first, row = variant_rows(shipped, {"longer": variant})
    assert header.startswith("| variant |") and first.startswith("| shipped | - | 87.50% |")
    assert row == "| longer | `epochs` 14 -> 99 | 86.00% | 90.00% | 87.00% | 87.00% | 38.0 min | 7.00 ms |"


def test_edgeshop_card_writes_the_card_of_a_run_from_its_own_figures(pipeline, synthetic_data, tmp_path, capsys):
    out = tmp_path / "card" / "MODEL_CARD.md"
    out.parent.mkdir()
    args = [str(pipeline["run"]), "--model", str(pipeline["int8"]), "--reference", str(pipeline["float16"]),
            "--data", str(synthetic_data["test"]), "--threads", "1", "--runs", "5", "--out", str(out)]
    assert card_cli.main(args) == 0
    figures = json.loads((out.parent / "figures.json").read_text())
    text = out.read_text()
    assert text == card.run_card(figures)  # the card is a rendering of the figures file, nothing else
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
    assert card_cli.main([str(tmp_path), "--model", str(pipeline["int8"]), "--data", str(synthetic_data["test"])]) == 2
    assert "not a finished edgeshop run directory" in capsys.readouterr().err


def test_rerun_spread_counts_images_over_the_shipped_run_and_its_reruns():
    from render_model_card import spread_lines

    def run(top1_images: int, coarse_images: int, minutes: float = 40.0, ms: float = 7.0) -> dict:
        return {"int8": {"val": {"n": 200, "top1": top1_images / 200, "coarse_top1": coarse_images / 200},
                         "latency_1t": {"p50_ms": ms}},
                "wall_seconds_train_and_export": 60 * minutes}

    text = "\n".join(spread_lines(run(170, 180), {"seed1": run(174, 178, 47.0, 9.5), "seed2": run(168, 185)}))
    assert "took 40.0-47.0 min" in text and "ranged 7.00-9.50 ms" in text
    assert "over 3 runs" in text
    assert "int8 top-1 was 168-174 of 200 (84.00%-87.00%, mean 85.33%)" in text
    assert "coarse top-1 178-185 of 200 (89.00%-92.50%, mean 90.50%)" in text
    assert "run-to-run variation" in "\n".join(spread_lines(run(170, 180), {}))


def test_holdout_section_compares_the_hold_out_with_val_in_the_same_run():
    from render_model_card import holdout_lines

    def summary(top1: float, coarse: float) -> dict:
        return {"n": 100, "top1": top1, "coarse_top1": coarse}

    figures = {"recipe": {"seed": 0}, "holdout_fraction": 0.1,
               "int8": {"holdout": summary(0.97, 0.98), "val": summary(0.86, 0.92)},
               "float16": {"holdout": summary(0.96, 0.975), "val": summary(0.85, 0.91)}}
    text = "\n".join(holdout_lines(figures, "holdout/figures_x.json"))
    assert "retrained on 90% of the official train split, measured on the other 10% (100 images" in text
    assert "scores 11.00 points higher on it than on val" in text
    assert "| int8 | 97.00% | 98.00% | 86.00% | 92.00% |" in text
    assert "make grocery-round1 ARGS=\"--holdout 0.1" in text and "--out runs/grocery_holdout --models-dir" in text


def test_grouped_holdout_section_says_whether_it_stands_in_for_val():
    from render_model_card import grouped_holdout_lines

    def summary(top1: float) -> dict:
        return {"n": 400, "top1": top1, "coarse_top1": top1}

    def text(holdout: float, random_gap: float | None = None) -> str:
        figures = {"recipe": {"seed": 0}, "holdout_fraction": 0.15, "holdout_grouping": "similarity",
                   "int8": {"holdout": summary(holdout), "val": summary(0.86)},
                   "float16": {"holdout": summary(holdout), "val": summary(0.86)}}
        return "\n".join(grouped_holdout_lines(figures, "holdout/figures_grouped.json", random_gap))

    near = text(0.85)
    assert "scores 1.00 points lower on this hold-out than on val" in near and "can stand in" in near
    assert "--holdout 0.15 --holdout-grouping similarity" in near
    far = text(0.90)
    assert "4.00 points higher" in far and "does not yet stand in" in far
    # the random hold-out's gap comes from that run's figures, not from the text
    assert "a random hold-out of the same recipe scored 7.50 points higher" in text(0.85, random_gap=7.5)
    assert "random hold-out" not in near


def test_soup_lines_name_the_runs_and_compare_with_the_shipped_run():
    from render_model_card import soup_lines
    shipped = {"int8": {"val": {"top1": 0.875, "coarse_top1": 0.919}}}
    soup = {"soup_of": ["runs/a", "runs/b"], "train_metrics": {"val_top1_float": 0.84},
            "int8": {"val": {"top1": 0.8378, "coarse_top1": 0.9223}}}
    text = " ".join(soup_lines(shipped, soup, "soups/figures_x.json"))
    assert "A uniform soup of the 2 runs above (`runs/a`, `runs/b`)" in text
    assert "averaging them lost fine top-1" in text
    assert "Float before QAT 84.00%, int8 top-1 83.78%, coarse top-1 92.23% (shipped: 87.50%, 91.90%)" in text


def test_variants_tried_counts_every_kept_figures_file_and_the_split_study(tmp_path):
    from render_model_card import tried_lines, variants_tried

    for name in ("figures_efficientnet_lite0.json", "figures_efficientnet_lite1.json",
                 "variants/figures_a.json", "variants/figures_b.json",
                 "reruns/figures_1.json", "holdout/figures_holdout10.json", "holdout/split_leak.json",
                 "open_set/variants/figures_cosine_head.json", "open_set/variants/open_set_cosine_head.json",
                 "history/figures_round1.json", "history/training_log_round1.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "grocery_seed_cnn_distill.json").write_text("{}")
    (tmp_path / "bench" / "results.json").write_text("{}")
    assert variants_tried(tmp_path, tmp_path / "bench") == {
        "shipped recipe": 1, "baseline": 0, "teacher": 1, "earlier shipped": 1, "variants": 2, "reruns": 1,
        "soups": 0, "holdout": 1, "in bench/": 1, "open-set variants": 1, "total": 9}
    lines = tried_lines({"variants_tried": 12, "variants_in_this_file": 9, "seeds": [0, 1, 2]})
    assert "The grouped-split study tried 12 ways of splitting train: 9 in `holdout/split_leak.json`, each with " \
           "3 seeds, and 3 earlier ones whose figures were not kept." in lines[1]
