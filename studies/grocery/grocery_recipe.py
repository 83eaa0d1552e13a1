"""The shipped grocery model's recipe, end to end, with its figures.

    python studies/grocery/grocery_recipe.py                      # EfficientNet-Lite0 -> models/grocery/
    python studies/grocery/grocery_recipe.py --arch seed_cnn      # the from-scratch baseline (figures only)

(`make grocery-baseline` runs the second; `make grocery` the first with `--out runs/grocery_distilled`,
after `make grocery-teachers` has made the recipe's teachers.) Steps: train with
configs/grocery_<arch>.json on the official train split (a recipe with select_best_epoch
true picks its epoch on the official val split; false keeps the last), export int8
(+ float16 reference), then measure
on val: top-1/top-5/coarse top-1/per-class/confusions (edgeshop-eval's code) and
latency of int8 vs float16 in the same process with the same threads
(edgeshop-bench's code; both through edgeshop/report/model_card_document.py, as edgeshop-card does).
The wall time of train + export is recorded. Figures go to
models/grocery/figures_efficientnet_lite0.json (the shipped model; other runs: studies/grocery/figures/);
studies/grocery/render_model_card.py writes the card.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import study_paths  # noqa: F401  (puts the repository root and tools/ on sys.path)
from study_paths import FIGURES, ROOT, SHIPPED, STUDY, variants_tried

from edgeshop import (
    machine_info,
    write_json_atomic,
)
from edgeshop.data import discover, read_class_names, read_hierarchy  # noqa: E402
from edgeshop.report import BENCH_RUNS, BENCH_THREADS, data_counts, measure_models, summary  # noqa: E402
from edgeshop.train import RunDir  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "grocery_store"))
    # efficientnet_lite1: the teacher (`make grocery-teacher`), not shipped: its files stay in the run
    parser.add_argument("--arch", default="efficientnet_lite0",
                        choices=("efficientnet_lite0", "efficientnet_lite1", "seed_cnn"))
    parser.add_argument("--config", help="recipe file (default configs/grocery_<arch>.json), to try a variant")
    parser.add_argument("--seed", type=int, help="replace the recipe's seed, to measure seed-to-seed spread")
    parser.add_argument("--out", help="run directory (default runs/grocery_<arch>)")
    parser.add_argument("--models-dir", default=str(SHIPPED))
    parser.add_argument("--holdout", type=float, metavar="FRACTION",
                        help="train on the official train split minus a random stratified FRACTION of it "
                             "and report figures on that hold-out beside val: how much a random split of burst "
                             "photos leaks (never a shipped model)")
    parser.add_argument("--exclude-classes", metavar="IDS",
                        help="comma-separated class ids of classes.csv to leave out of train and val (the open-set "
                             "benchmark model: models/grocery/open_set/, named grocery<N>_*.tflite for N classes)")
    parser.add_argument("--holdout-grouping", choices=("none", "file_order", "similarity"), default="none",
                        help="draw the --holdout in whole groups of look-alike photos (edgeshop-train's "
                             "--val-grouping) instead of at random")
    parser.add_argument("--resume", action="store_true", help="resume an interrupted run in --out")
    parser.add_argument("--force", action="store_true", help="replace an earlier run and shipped files")
    parser.add_argument("--reexport", action="store_true",
                        help="a finished run in --out: export and measure again without training (the wall "
                             "time is then the run's training time plus this export)")
    args = parser.parse_args()

    from edgeshop.train import export, run_split, train

    dataset, models_dir = Path(args.dataset), Path(args.models_dir)
    run = Path(args.out or ROOT / "runs" / f"grocery_{args.arch}")
    recipe_file = Path(args.config) if args.config else ROOT / "configs" / f"grocery_{args.arch}.json"
    recipe = json.loads(recipe_file.read_text())
    if args.seed is not None:
        recipe["seed"] = args.seed
    excluded = parse_class_ids(args.exclude_classes, dataset / "classes.csv") if args.exclude_classes else []
    if excluded and args.holdout:
        print("--exclude-classes and --holdout are separate studies; pass one", file=sys.stderr)
        return 2
    shipped_dir = models_dir.resolve() == SHIPPED.resolve()
    if excluded and shipped_dir:
        models_dir = models_dir / "open_set"
    config = recipe_config(dataset, run, recipe, holdout=args.holdout, excluded=excluded,
                           grouping=args.holdout_grouping)
    ship = args.arch == "efficientnet_lite0"
    if args.holdout and shipped_dir:
        print("--holdout trains on less data than the shipped model: pass --models-dir runs/<name>_models",
              file=sys.stderr)
        return 2
    if args.holdout and recipe.get("teacher"):
        print(f"{recipe_file} distils from teachers trained on all of train, so they have seen the hold-out; "
              "measure a recipe without teachers (e.g. --config configs/grocery_round1.json)", file=sys.stderr)
        return 2
    if args.holdout and recipe.get("select_best_epoch", True):
        print(f"{recipe_file}: selects its epoch on the validation images (select_best_epoch), so the "
              "hold-out would not be clean; --holdout measures fixed-schedule recipes", file=sys.stderr)
        return 2
    stem = f"grocery{81 - len(excluded)}" if excluded else "grocery"
    targets = {"int8": models_dir / f"{stem}_int8.tflite", "float16": models_dir / f"{stem}_fp16.tflite"}
    if not ship:
        targets = {fmt: run / f"{args.arch}_{fmt}.tflite" for fmt in ("int8", "float16")}
    existing = [p for p in targets.values() if p.exists()]
    if existing and not args.force:
        print(f"{existing[0]} exists; pass --force to replace the shipped model", file=sys.stderr)
        return 2

    started = time.time()
    if args.reexport:
        metrics = RunDir(run).read_json(RunDir(run).metrics_file)
        started -= metrics["wall_seconds_this_invocation"]
    else:
        metrics = train(config, resume=args.resume, force=args.force and not args.resume)
    exports = {}
    for fmt, target in targets.items():
        exports[fmt] = export(run, target, fmt, force=True)
    wall = time.time() - started
    if ship:
        shutil.copy(RunDir(run).training_log, models_dir / "training_log.csv")

    # the official val split (a manifest of it without excluded classes); with --holdout the
    # run validated on its hold-out instead, and val is still reported
    samples = discover(config.data.val or dataset / "val")
    hierarchy = read_hierarchy(dataset / "classes.csv")
    figures = {"arch": args.arch, "recipe": recipe, "train_metrics": metrics,
               "wall_seconds_train_and_export": round(wall, 1), "resumed": args.resume, "reexported": args.reexport}
    if args.holdout:
        figures["holdout_fraction"] = args.holdout
        figures["holdout_grouping"] = args.holdout_grouping
    if excluded:
        figures["excluded_classes"] = excluded
    soup_of = RunDir(run).read_state().get("soup_of")
    if soup_of:  # a run made by studies/grocery/seed_soup.py
        figures["soup_of"] = soup_of
    figures.update(measure_models(targets, samples, hierarchy, BENCH_THREADS, BENCH_RUNS))
    figures["data_report"] = data_counts(run)
    if args.holdout:
        holdout = run_split(RunDir(run), config)[1]  # as the run recorded it
        for fmt, target in targets.items():
            figures[fmt]["holdout"] = summary(target, holdout, hierarchy)
    figures["machine"] = machine_info()
    figures_file = figures_dir(models_dir, shipped_dir, ship, bool(excluded)) / (
        f"figures_{stem}.json" if excluded else f"figures_{args.arch}.json")
    # every run measured on val with its figures kept in models/grocery/ or the study's figures/, this one included
    counted = {SHIPPED.resolve(), FIGURES.resolve()}
    figures["variants_tried"] = variants_tried()["total"] + int(
        figures_file.resolve().parent not in counted or not figures_file.exists())
    write_json_atomic(figures_file, figures)
    print(f"wrote {figures_file}: int8 val top-1 {figures['int8']['val']['top1']:.4f}, "
          f"float16 {figures['float16']['val']['top1']:.4f}, wall {wall / 60:.1f} min")
    if shipped_dir:
        subprocess.run([sys.executable, str(STUDY / "render_model_card.py")], check=True)
    return 0


def figures_dir(models_dir: Path, shipped_dir: bool, ship: bool, excluded: bool) -> Path:
    """Where a run's figures file goes: beside the shipped model for the shipped recipe, the study's
    figures/ (open_set/ for the open-set model) for the other runs into models/grocery/, and the
    models directory itself for a run given its own --models-dir."""
    if not shipped_dir:
        return models_dir
    if excluded:
        return FIGURES / "open_set"
    return models_dir if ship else FIGURES


def recipe_config(dataset: Path, run: Path, recipe: dict, holdout: float | None = None,
                  excluded: list[dict] | None = None, grouping: str = "none"):
    """The training configuration of a recipe on the Grocery Store layout: the official
    train split, val for reporting (and selection, if the recipe asks), classes.csv as
    the class hierarchy. With ``holdout``, the run's own validation images are instead a
    stratified fraction of train (in whole groups with ``grouping``), kept out of training.
    With ``excluded`` classes, train and val are manifests of the other classes, written
    beside the run directory (the run directory itself belongs to training, which refuses
    to start in a non-empty one)."""
    from edgeshop.train import TrainConfig

    train, val_source = dataset / "train", dataset / "val"
    if excluded:
        names = {c["name"] for c in excluded}
        train = write_manifest(discover(train), names, run.with_name(run.name + "_train.csv"))
        val_source = write_manifest(discover(val_source), names, run.with_name(run.name + "_val.csv"))
    val = {"val": None, "val_fraction": holdout, "val_grouping": grouping} if holdout else {"val": str(val_source)}
    return TrainConfig.from_flat(data=str(train), out=str(run), hierarchy=str(dataset / "classes.csv"), **val, **recipe)


def parse_class_ids(text: str, classes_csv: Path) -> list[dict]:
    """``"4,12"`` -> [{"id": 4, "name": "Royal-Gala"}, ...], every id checked against classes.csv."""
    names = read_class_names(classes_csv)
    try:
        ids = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise SystemExit(f"--exclude-classes: expected comma-separated class ids, got {text!r}") from None
    unknown = [i for i in ids if i not in names]
    if unknown:
        raise SystemExit(f"--exclude-classes: {unknown} are not class ids of {classes_csv}")
    return [{"id": i, "name": names[i]} for i in ids]


def write_manifest(samples, excluded_names: set[str], path: Path) -> Path:
    """A path,label manifest of ``samples`` without the excluded classes (absolute paths)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{s.path.resolve()},{s.label}" for s in samples if s.label not in excluded_names]
    path.write_text("path,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main())
