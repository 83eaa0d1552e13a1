"""The grocery model's cards (studies/grocery/render_model_card.py): the short card beside the
shipped model, the study's full card and its README block against the figures files they are
rendered from, and each study sentence against figures written out by hand (expected text is
literal, never built with the renderer's own format strings)."""

from __future__ import annotations

from card_figures import run_figures
from readme_block import read_block
from render_model_card import (
    bench_ratio_sentence,
    grocery_card,
    load_all,
    readme_summary,
    recipe_changes,
    short_card,
    variant_rows,
)

from .conftest import REPO


def test_shipped_card_and_readme_block_are_what_the_figures_files_render():
    """Edit a figure by hand, or change a figures file without re-rendering, and this fails:
    rerun `python studies/grocery/render_model_card.py`."""
    files = load_all()
    assert (REPO / "models" / "grocery" / "README.md").read_text() == short_card(files[0], files[1], files[-1])
    assert (REPO / "studies" / "grocery" / "model-card-details.md").read_text() == grocery_card(*files)
    assert read_block("grocery") == readme_summary(files[0], files[1], files[-1])




def test_readme_summary_states_the_gap_to_the_published_best_in_the_right_direction():
    text = readme_summary(run_figures(top1=0.875, coarse=0.92), None)
    assert "| Lite0 int8 | 87.50% | 99.00% | 92.00% | 4.07 | 7.00 | 4.00 |" in text
    assert "the int8 model is 1.46 points above it on fine classes and\n0.01 points above it on coarse" in text
    assert "classifies photos into the 3 fine classes" in text
    lower = readme_summary(run_figures(top1=0.85, coarse=0.9), None)
    assert "1.04 points below it on fine classes and\n1.99 points below it on coarse" in lower
    assert "fine-tuned at 240 px and QAT at 288 px" in text and "(200 images, never trained on" in text


def test_the_model_shipped_before_is_named_with_its_recipe_change_and_the_gain():
    from render_model_card import history_lines

    round1 = run_figures(top1=0.875)
    round2 = run_figures(top1=0.90)
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


def test_variant_table_names_each_recipe_change_against_the_shipped_run():
    assert recipe_changes({"epochs": 14, "seed": 0}, {"epochs": 16, "seed": 0, "mix": 0.5}) == (
        "`epochs` 14 -> 16, `mix` default -> 0.5")
    shipped, variant = run_figures(), run_figures(top1=0.86, coarse=0.9)
    variant["recipe"] = {**variant["recipe"], "epochs": 99}
    header, _, first, row = variant_rows(shipped, {"longer": variant})
    assert header.startswith("| variant |") and first.startswith("| shipped | - | 87.50% |")
    assert row == "| longer | `epochs` 14 -> 99 | 86.00% | 90.00% | 87.00% | 87.00% | 38.0 min | 7.00 ms |"


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
    from render_model_card import tried_lines
    from study_paths import variants_tried

    shipped, figures = tmp_path / "models" / "grocery", tmp_path / "figures"
    for name in ("figures_efficientnet_lite1.json", "variants/figures_a.json", "variants/figures_b.json",
                 "reruns/figures_1.json", "holdout/figures_holdout10.json", "holdout/split_leak.json",
                 "open_set/variants/figures_cosine_head.json", "open_set/variants/open_set_cosine_head.json",
                 "history/figures_round1.json", "history/training_log_round1.csv",
                 "bench/grocery_seed_cnn_distill.json", "bench/pipeline.json"):
        (figures / name).parent.mkdir(parents=True, exist_ok=True)
        (figures / name).write_text("{}")
    # the shipped recipe's figures beside the model; a study file left there is not counted twice
    for name in ("figures_efficientnet_lite0.json", "figures_seed_cnn.json", "variants/figures_c.json"):
        (shipped / name).parent.mkdir(parents=True, exist_ok=True)
        (shipped / name).write_text("{}")
    assert variants_tried(shipped, figures) == {
        "shipped recipe": 1, "baseline": 0, "teacher": 1, "earlier shipped": 1, "variants": 2, "reruns": 1,
        "soups": 0, "holdout": 1, "in bench/": 1, "open-set variants": 1, "total": 9}
    lines = tried_lines({"variants_tried": 12, "variants_in_this_file": 9, "seeds": [0, 1, 2]})
    assert "The grouped-split study tried 12 ways of splitting train: 9 in `holdout/split_leak.json`, each with " \
           "3 seeds, and 3 earlier ones whose figures were not kept." in lines[1]


def test_the_bench_ratio_sentence_reads_make_bench_figures():
    bench = {"threads": {"1": {"latency": {"litert_int8": {"p50_ms": 7.0}, "litert_float16": {"p50_ms": 15.0}}},
                         "2": {"latency": {"litert_int8": {"p50_ms": 3.5}, "litert_float16": {"p50_ms": 7.0}}}}}
    assert bench_ratio_sentence(bench) == "0.47x (1 thread), 0.50x (2 threads)"
