"""Input resolution against accuracy and int8 latency, for picking a device's operating point.

    python studies/grocery/resolution_sweep.py                       # 160, 192, 224 px + the round-1 model at 288
    python studies/grocery/resolution_sweep.py --sizes 160 192       # a subset; finished sizes are reused

(`make resolution-sweep` runs the first line.) Each size trains the round-1 recipe
(configs/grocery_round1.json) with only `image_size` changed (and
`train_image_size` in the same proportion), on the official
train split, selects on val, and exports int8. Then every model (including the round-1 model
at 288 px, the same recipe: `make resolution-sweep` takes it from git history) is evaluated on
val and timed in one process, so the latencies are comparable.
Writes studies/grocery/figures/resolution_sweep.json. Takes about 45 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import study_paths  # noqa: F401  (puts the repository root and tools/ on sys.path)
from grocery_recipe import recipe_config  # noqa: E402
from readme_block import replace_block  # noqa: E402
from study_paths import FIGURES, ROOT

from edgeshop import (
    Classifier,
    benchmark_model,
    write_json_atomic,
)
from edgeshop.data import discover, read_hierarchy  # noqa: E402
from edgeshop.report import (
    predict,
    summarize,
)
from edgeshop.train import RunDir  # noqa: E402

ROUND1 = ROOT / "runs" / "teachers" / "grocery_round1_int8.tflite"  # make resolution-sweep: from git history
ROUND1_FIGURES = FIGURES / "history" / "figures_round1.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "grocery_store"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 192, 224])
    parser.add_argument("--config", default=str(ROOT / "configs" / "grocery_round1.json"))
    parser.add_argument("--runs-dir", default=str(ROOT / "runs"))
    parser.add_argument("--out", default=str(FIGURES / "resolution_sweep.json"))
    parser.add_argument("--bench-runs", type=int, default=200)
    parser.add_argument("--reference", default=str(ROUND1),
                        help="the recipe's own model at its full size (default: the round-1 shipped int8 file)")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the README's sweep table")
    args = parser.parse_args()

    from edgeshop.train import export, train

    reference = Path(args.reference)
    if not reference.is_file():  # checked before any training
        print(f"{reference}: not found; `make resolution-sweep` extracts the round-1 model from git history",
              file=sys.stderr)
        return 2
    dataset = Path(args.dataset)
    recipe = json.loads(Path(args.config).read_text())
    models: dict[str, Path] = {}
    wall: dict[str, float] = {}
    for size in args.sizes:
        run = Path(args.runs_dir) / f"grocery_{size}px"
        target = run / f"grocery_{size}px_int8.tflite"
        timing = run / "sweep_seconds.json"
        wanted = sweep_recipe(recipe, size)
        stale = RunDir(run).config_file.exists() and not same_recipe(run, wanted)
        if stale:
            print(f"{run}: trained with another recipe than {args.config}; training it again")
        if stale or not target.exists():  # a finished size is reused, an interrupted one resumes
            started = time.time()
            config = recipe_config(dataset, run, wanted)
            train(config, resume=not stale and RunDir(run).has_state(), force=stale)
            export(run, target, "int8", force=True)
            write_json_atomic(timing, {"train_and_export_seconds": round(time.time() - started, 1)})
        wall[f"{size}"] = json.loads(timing.read_text())["train_and_export_seconds"] if timing.exists() else None
        models[f"{size}"] = target
    reference_name = f"{Classifier(reference).input_spec.height} ({'round 1' if reference == ROUND1 else 'reference'})"
    models[reference_name] = reference
    if reference == ROUND1 and ROUND1_FIGURES.exists():
        wall[reference_name] = json.loads(ROUND1_FIGURES.read_text())["wall_seconds_train_and_export"]

    samples = discover(dataset / "val")
    hierarchy = read_hierarchy(dataset / "classes.csv")
    rows = []
    for name, path in models.items():
        result = predict(Classifier(path), samples)
        summary = summarize(result.truth, result.scores, result.labels, hierarchy)
        row = {"image_size": name, "model": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
               "val_top1": summary["top1"], "val_top5": summary["top5"],
               "val_coarse_top1": summary.get("coarse_top1"), "size_bytes": path.stat().st_size,
               "train_and_export_seconds": wall.get(name)}
        for threads in (1, 2):
            row[f"int8_p50_ms_{threads}t"] = benchmark_model(path, threads, runs=args.bench_runs)["p50_ms"]
        rows.append(row)
        print(json.dumps(row))
    results = {"recipe": recipe, "val_images": len(samples), "command": "make resolution-sweep", "rows": rows}
    write_json_atomic(Path(args.out), results)
    table = render_table(results)
    print(table)
    if not args.no_readme:
        replace_block("sweep", table)
    print(f"wrote {args.out}")
    return 0


def sweep_recipe(recipe: dict, size: int) -> dict:
    """The recipe at another input side; a lower training side keeps its ratio to it."""
    values = {**recipe, "image_size": size}
    if recipe.get("train_image_size"):
        values["train_image_size"] = round(recipe["train_image_size"] * size / recipe["image_size"])
    return values


def same_recipe(run: Path, wanted: dict) -> bool:
    from edgeshop.train import TrainConfig, flatten

    saved = TrainConfig.from_saved(RunDir(run).read_config()).to_keys()
    return all(saved[key] == value for key, value in flatten(wanted).items())


def render_table(results: dict) -> str:
    lines = ["| input (px) | int8 val top-1 | top-5 | coarse top-1 | int8 latency, 1 thread | 2 threads "
             "| train + export |", "|---|---|---|---|---|---|---|"]
    for row in results["rows"]:
        minutes = row["train_and_export_seconds"]
        lines.append(
            f"| {row['image_size']} | {row['val_top1']:.2%} | {row['val_top5']:.2%} | "
            f"{row['val_coarse_top1']:.2%} | {row['int8_p50_ms_1t']:.2f} ms | {row['int8_p50_ms_2t']:.2f} ms | "
            f"{'' if minutes is None else f'{minutes / 60:.1f} min'} |")
    lines += ["", f"Val: the official val split ({results['val_images']} images). Latency: median of bare "
              "invokes, all rows timed in one process. Command: `make resolution-sweep` (raw: "
              "`studies/grocery/figures/resolution_sweep.json`)."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
