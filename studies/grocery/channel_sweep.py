"""Channel-pruning sweep on the grocery recipe: val top-1, size and int8 latency per level.

    python studies/grocery/channel_sweep.py              # `make channel-sweep`; about 100 min here
    python studies/grocery/channel_sweep.py --level 0.8  # train one level only (e.g. several in parallel)
    python studies/grocery/channel_sweep.py --level 0.7 --tag 2t  # the 0.70x level again, searched at 1 and 2 threads
    python studies/grocery/channel_sweep.py --level 0.7 --tag kd  # from the round-2 candidate and its three teachers
    python studies/grocery/channel_sweep.py --level 0.7 --tag kd20  # that network again, fine-tuned 20 epochs
    python studies/grocery/channel_sweep.py --level 0.7 --tag kd-ls  # that network again, projections refitted first
    python studies/grocery/channel_sweep.py --refit-check --level 0.7 --tag kd-ls  # val top-1 before fine-tuning,
                                                                  # with/without
    python studies/grocery/channel_sweep.py --level 0.85 --tag kd-256-swa  # 0.85x-kd-256 again, mean of its last
                                                                           # 5 epochs
    python studies/grocery/channel_sweep.py --measure    # re-measure the finished levels only

Steps:
1. The base: the round-1 recipe (configs/grocery_round1.json) up to the end
   of its main phase, without QAT (runs/grocery_base). Every level without -kd in its name
   branches from it, so those levels differ only in what channel pruning changes.
2. Per level (a latency target): a copy of the base run with `target_latency_ratio` set
   is resumed, which is exactly what `edgeshop-train <recipe> --target-latency-ratio LEVEL
   --prune-channels-epochs 10 --teacher runs/grocery_base` runs after the main phase:
   choose per-group fractions by timing and output damage (train/latency_target.py),
   remove the channels, fine-tune (distilled from the unpruned base), the recipe's QAT,
   then the int8 export.
3. Measure on the official val split: top-1/top-5/coarse top-1 (edgeshop-eval's code), each
   drop below the shipped model with its paired bootstrap interval, file size, and bare-invoke
   latency at 1 and 2 threads interleaved call by call with the shipped int8 model in this one
   process (ratios are the figures to quote).
   The -kd levels branch instead from the round-2 candidate (runs/grocery_distilled,
   `make grocery`, the shipped recipe) and are fine-tuned from its ensemble teacher.
4. Ship the level chosen by the rule fixed before the sweep (LEVELS, choose_level) as
   models/grocery/grocery_int8_fast.tflite; figures in studies/grocery/figures/channel_pruning.json,
   plot in studies/grocery/figures/channel_pruning.png; studies/grocery/render_model_card.py renders the card.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import study_paths  # noqa: F401  (puts the repository root and tools/ on sys.path)
from readme_block import replace_block  # noqa: E402
from study_paths import FIGURES as STUDY_FIGURES
from study_paths import ROOT, STUDY

from edgeshop import write_json_atomic  # noqa: E402
from edgeshop.data import discover, read_hierarchy  # noqa: E402
from edgeshop.report import (  # noqa: E402
    BOOTSTRAP_RESAMPLES,
    paired_difference_interval,
    summary_and_hits,
)
from edgeshop.train import CARD, CONFIG, DATA_REPORT, LABELS, REPRESENTATIVE_IMAGES, RunDir  # noqa: E402

FINE_TUNE_EPOCHS = 10  # a level's default


@dataclass(frozen=True)
class Level:
    ratio: float  # --target-latency-ratio
    tag: str = ""  # tells a rerun of a ratio apart (its own run directory and table row)
    base: str = "grocery_base"  # the run (in --runs-dir) whose main phase it branches from
    recipe: str = "configs/grocery_round1.json"  # the base's recipe
    ensemble_teacher: bool = False  # distilled from the recipe's teachers instead of its own base
    epochs: int = FINE_TUNE_EPOCHS  # after the channels are removed
    plan_from: str = ""  # a level whose channel plan (channels.json) it reuses instead of searching again
    reconstruct: bool = False  # --reconstruct-channels: projections refitted by least squares before fine-tuning
    image_size: int = 0  # validated and exported at this size instead of the recipe's (0: the recipe's)
    average_last: int = 0  # --prune-channels-average-last-epochs: keep the mean of the fine-tune's last N epochs

    @property
    def name(self) -> str:
        return f"{self.ratio:.2f}x" + (f"-{self.tag}" if self.tag else "")


# 0.67 was added after 0.70 measured 0.704x on 2 threads, when the search timed one thread;
# 0.70x-2t: the same target once the search met it at 1 and 2 threads (latency_target.TARGET_THREADS)
# 0.70x-kd: that search on the round-2 model (make grocery), fine-tuned from its three teachers
DISTILLED = Level(0.70, "kd", base="grocery_distilled", recipe="configs/grocery_efficientnet_lite0.json",
                  ensemble_teacher=True)
# 0.70x-kd20: the 0.70x-kd network (its plan reused, so only the training differs), fine-tuned 20 epochs
# instead of 10: its fine-tuning val top-1 was still rising at epoch 10
DISTILLED_LONGER = Level(0.70, "kd20", base="grocery_distilled", recipe="configs/grocery_efficientnet_lite0.json",
                         ensemble_teacher=True, epochs=20, plan_from=DISTILLED.name)
# 0.70x-kd-ls: the 0.70x-kd network again (its plan reused), its projections refitted by least squares on
# the kept channels before the same fine-tuning: plain removal left it at 40% val top-1, the refit at 79%
DISTILLED_REFIT = Level(0.70, "kd-ls", base="grocery_distilled", recipe="configs/grocery_efficientnet_lite0.json",
                        ensemble_teacher=True, plan_from=DISTILLED.name, reconstruct=True)
# 0.85x-kd-256: resolution and width together (EfficientNet's compound scaling, run backwards): the round-2
# main phase (trained at 240 px) validated and exported at 256 px instead of 288 keeps its float val top-1
# (88.85% at both) and runs at 0.80x the 288-px int8 model here; 0.85x of that by channels is ~0.69x
DISTILLED_256 = Level(0.85, "kd-256", base="grocery_distilled", recipe="configs/grocery_efficientnet_lite0.json",
                      ensemble_teacher=True, image_size=256)
# 0.85x-kd-256-swa: the 0.85x-kd-256 network again (its plan reused, so only the training differs), keeping
# the mean weights of the fine-tune's last 5 of 10 epochs (the low-learning-rate half of the cosine schedule):
# that level's val top-1 swung between 85% and 89% from one fine-tuning epoch to the next
DISTILLED_256_SWA = Level(0.85, "kd-256-swa", base="grocery_distilled",
                          recipe="configs/grocery_efficientnet_lite0.json", ensemble_teacher=True, image_size=256,
                          plan_from=DISTILLED_256.name, average_last=5)
LEVELS = (Level(0.80), Level(0.70), Level(0.67), Level(0.60), Level(0.70, "2t"), DISTILLED, DISTILLED_LONGER,
          DISTILLED_REFIT, DISTILLED_256, DISTILLED_256_SWA)
BY_NAME = {level.name: level for level in LEVELS}
TARGET_RATIO, TARGET_DROP = 0.70, 0.015  # issue 22: <= 0.70x bare invoke, <= 1.5 points lower val top-1
THREADS, RUNS, REPEATS = (1, 2), 300, 3
GROCERY = ROOT / "models" / "grocery"  # the shipped files
SHIPPED = GROCERY / "grocery_int8.tflite"
FAST = GROCERY / "grocery_int8_fast.tflite"
FIGURES = STUDY_FIGURES / "channel_pruning.json"
UNIFORM = STUDY_FIGURES / "channel_pruning_uniform.json"  # the first sweep: uniform fractions (commit 672c819)
PLOT = STUDY_FIGURES / "channel_pruning.png"
COMMAND = "python studies/grocery/channel_sweep.py"
BASE_FILES = (CONFIG, CARD, LABELS, DATA_REPORT, REPRESENTATIVE_IMAGES)  # what a level takes from its base


def base_config(dataset: Path, run: Path, recipe_file: str = Level.recipe):
    """A recipe without QAT: the branching point of the levels."""
    from grocery_recipe import recipe_config

    recipe = json.loads((ROOT / recipe_file).read_text())
    return recipe_config(dataset, run, {**recipe, "qat": False}), recipe


def train_base(dataset: Path, run: Path, log=print) -> None:
    from edgeshop.train import train

    config, _ = base_config(dataset, run)
    if _main_phase_done(run):
        log(f"{run}: base already trained")
        return
    train(config, resume=RunDir(run).has_state(), log=log)


def branch(base: Path, level: Level, run: Path, recipe: dict) -> None:
    """A run directory that resumes after the base's main phase with channel pruning on
    (with ``level.plan_from``: the channels that level removed, no search)."""
    from edgeshop.train import RunDir, TrainConfig, cache_file

    if RunDir(run).has_state():
        return  # started earlier: resume it as it is
    plan = RunDir(level_run(base.parent, BY_NAME[level.plan_from])).channel_plan_file if level.plan_from else None
    if plan is not None:  # channel indices name channels of the same trained weights only
        source = BY_NAME[level.plan_from]
        if source.base != level.base or not plan.is_file():
            raise SystemExit(f"level {level.name} keeps the channels of {source.name}, which must branch from the "
                             f"same base ({source.base}, here {level.base}) and be trained first ({plan} is "
                             f"missing): {COMMAND} --level {source.ratio:g} --tag {source.tag}")
    saved = TrainConfig.from_saved(RunDir(base).read_config())
    # an ensemble-taught level keeps the teachers its base was distilled from (their caches come along)
    teacher = saved.distillation.teacher if level.ensemble_teacher else str(base)
    overrides = dict(prune_channels=0.0, target_latency_ratio=level.ratio, prune_channels_epochs=level.epochs,
                     qat=recipe["qat"], teacher=teacher, reconstruct_channels=level.reconstruct,
                     prune_channels_average_last_epochs=level.average_last)
    if level.image_size:  # the resumed run decodes its images, representative images and card at this size
        overrides["image_size"] = level.image_size
    new = RunDir(base).branch(run, after="train", **overrides)
    if plan is not None:  # the fit reads a plan already in the run directory instead of searching
        shutil.copy2(plan, new.channel_plan_file)
    if not level.ensemble_teacher:  # a sibling level taught by the same base has its logits
        sibling = next((RunDir(p) for p in sorted(base.parent.glob("grocery_channels_*"))
                        if RunDir(p).teacher_logits(0).is_file() and RunDir(p).config_file.is_file()
                        and TrainConfig.from_saved(RunDir(p).read_config()).distillation.teacher
                        == str(base)), None)
        if sibling is not None:
            shutil.copy2(sibling.teacher_logits(0), run / cache_file(0))


REFIT_CHECK = "refit_check.json"  # in a level's run: val top-1 before fine-tuning, channels removed vs refitted


def refit_check(runs: Path, level: Level, dataset: Path) -> dict[str, Any]:
    """Val top-1 of the level's base with the level's channels removed, before any
    fine-tuning: plainly, and with the projections refitted (what --reconstruct-channels
    starts fine-tuning from: the same weights, plan, calibration images and seed)."""

    from edgeshop.data import load_images
    from edgeshop.tflite import InputSpec
    from edgeshop.train import (
        RECONSTRUCTION_IMAGES,
        find_groups,
        load_run_model,
        mask_channels,
        read_channel_plan,
        read_run,
        refitted_copy,
    )

    run = level_run(runs, level)
    plan = read_channel_plan(run)
    if plan is None:
        raise SystemExit(f"{run} has no channel plan yet: train the level first (--level {level.ratio:g} "
                         f"--tag {level.tag})")
    config, labels, _ = read_run(runs / level.base)
    full = load_run_model(runs / level.base, final=False)  # the main phase the level branched from
    groups = find_groups(full)
    images = RunDir(run).representative_images(RECONSTRUCTION_IMAGES)
    size = level.image_size or config.model.image_size  # the size the level's calibration images have
    val = load_images(discover(dataset / "val"), labels,
                      InputSpec(size, size, interpolation=config.model.interpolation))
    removed = mask_channels(full, groups, plan)
    refitted, _ = refitted_copy(full, groups, plan, images)

    result = {
        "val_images": int(len(val.labels)),
        "unpruned": _float_top1(full, val),
        "removed": _float_top1(removed, val),
        "refitted": _float_top1(refitted, val),
        "command": f"{COMMAND} --refit-check --level {level.ratio:g} --tag {level.tag}",
    }
    write_json_atomic(run / REFIT_CHECK, result)
    return result


SIZE_CHECK = "size_check.json"  # in a level's run with its own input size: the unpruned base at both sizes


def size_check(runs: Path, level: Level, dataset: Path) -> dict[str, Any]:
    """For a level with its own input size: the base's float val top-1 at the recipe's size
    and at the level's, and the unpruned int8 bare invoke at the level's size over the
    recipe's (interleaved call by call, like the search's timing), at 1 and 2 threads."""
    import dataclasses

    import cv2
    import numpy as np

    from edgeshop.data import load_images
    from edgeshop.tflite import InputSpec
    from edgeshop.train import build_model, int8_flatbuffer, interleaved_p50, load_weights, read_run

    if not level.image_size:
        raise SystemExit(f"level {level.name} runs at its recipe's size: nothing to compare")
    base = runs / level.base
    config, labels, _ = read_run(base)
    calibration = RunDir(base).representative_images(32)
    samples = discover(dataset / "val")
    result: dict[str, Any] = {"sizes": [config.model.image_size, level.image_size], "val_top1_float": {}}
    flatbuffers = {}
    for size in (config.model.image_size, level.image_size):
        model = build_model(
            dataclasses.replace(config, model=dataclasses.replace(config.model, image_size=size)), len(labels)
        )
        load_weights(model, RunDir(base).stage_weights("train"))  # the main phase every level branches from
        val = load_images(samples, labels, InputSpec(size, size, interpolation=config.model.interpolation))
        result["val_top1_float"][str(size)] = _float_top1(model, val)
        images = np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) for image in calibration])
        flatbuffers[str(size)] = int8_flatbuffer(model, images.astype(np.float32))
    result["int8_ratio"] = {}
    for threads in THREADS:
        p50 = interleaved_p50(flatbuffers, threads=threads, runs=100)
        result["int8_ratio"][f"{threads}t"] = p50[str(level.image_size)] / p50[str(config.model.image_size)]
    result["command"] = f"{COMMAND} --size-check --level {level.ratio:g} --tag {level.tag}"
    write_json_atomic(level_run(runs, level) / SIZE_CHECK, result)
    return result


def _float_top1(model: Any, val: Any) -> float:
    """Top-1 of a Keras model on decoded val images (datasets.LoadedImages), by the
    evaluation's own rule (edgeshop-eval, training's metrics)."""
    import numpy as np

    from edgeshop.report import top_k_accuracy

    return top_k_accuracy(val.labels, model.predict(val.pixels.astype(np.float32), batch_size=32, verbose=0), 1)


def level_run(runs: Path, level: Level) -> Path:
    suffix = f"_{level.tag}" if level.tag else ""
    return runs / f"grocery_channels_t{round(level.ratio * 100)}_e{level.epochs}{suffix}"


def interleaved_latency(models: dict[str, Path], threads: int, runs: int) -> dict[str, dict]:
    """Bare invoke of every model, alternating call by call (runtime/bench.py)."""
    from edgeshop import time_models

    stats = time_models({name: path.read_bytes() for name, path in models.items()}, threads, runs, warmup=10)
    return {name: {"p50_ms": s.p50_ms, "p90_ms": s.p90_ms} for name, s in stats.items()}


def measure(models: dict[str, Path], samples, hierarchy, reference: str, against: dict[str, str] | None = None) -> dict:
    """Val figures, size, and latency per thread count: REPEATS interleaved sessions, the
    median of their p50s (and the range of the ratios, so a reader sees the spread). Every
    model's drop below ``reference`` gets its paired bootstrap interval (drop_interval), and
    a model named in ``against`` its drop below that other model (drop_vs_plan)."""
    import statistics

    from edgeshop import machine_info
    from edgeshop.tflite import read_card

    figures, hits = {}, {}
    for name, path in models.items():
        val, hits[name] = summary_and_hits(path, samples, hierarchy)
        figures[name] = {
            "file": str(path.relative_to(ROOT)),
            "size_bytes": path.stat().st_size,
            "input_px": read_card(path.read_bytes()).input.height,
            "val": val,
        }
    for name in models:
        if name != reference:  # paired: the same images, so only the two models' disagreements count
            figures[name]["drop_interval"] = list(paired_hits_interval(hits[reference], hits[name], name))
    for name, other in (against or {}).items():  # e.g. a level against the level whose channels it keeps
        figures[name]["drop_vs_plan"] = {
            "against": other,
            "drop": figures[other]["val"]["top1"] - figures[name]["val"]["top1"],
            "interval": list(paired_hits_interval(hits[other], hits[name], name)),
        }
    figures[reference]["interval_resamples"] = BOOTSTRAP_RESAMPLES
    for threads in THREADS:
        sessions = [interleaved_latency(models, threads, RUNS) for _ in range(REPEATS)]
        for name in models:
            ratios = [s[name]["p50_ms"] / s[reference]["p50_ms"] for s in sessions]
            figures[name][f"latency_{threads}t"] = {
                key: statistics.median(s[name][key] for s in sessions) for key in ("p50_ms", "p90_ms")
            }
            figures[name][f"ratio_{threads}t"] = statistics.median(ratios)
            figures[name][f"ratio_{threads}t_range"] = [min(ratios), max(ratios)]
    return {"models": figures, "machine": machine_info(), "repeats": REPEATS}


def paired_hits_interval(first: dict[Path, bool], second: dict[Path, bool], name: str) -> tuple[float, float]:
    """The 95% paired bootstrap interval of top-1(first) - top-1(second) over the images both read."""
    import numpy as np

    if first.keys() != second.keys():
        raise SystemExit(
            f"{name} read other val images than the model it is compared with (an unreadable file "
            "on one side only?); pairing needs the same images"
        )
    paths = list(first)
    return paired_difference_interval(np.array([first[p] for p in paths]), np.array([second[p] for p in paths]))


def choose_level(figures: dict, levels: list[str]) -> str | None:
    """The rule fixed before the sweep: the most accurate level that meets the latency
    target at both thread counts and loses at most TARGET_DROP; if none loses that little,
    the most accurate level meeting the latency target; None if no level is fast enough."""
    shipped = figures["shipped"]["val"]["top1"]
    fast = [name for name in levels if all(figures[name][f"ratio_{t}t"] <= TARGET_RATIO for t in THREADS)]
    if not fast:
        return None
    good = [name for name in fast if shipped - figures[name]["val"]["top1"] <= TARGET_DROP]
    return max(good or fast, key=lambda name: figures[name]["val"]["top1"])


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _drop(f: dict, shipped: dict) -> str:
    """Val top-1 points below the shipped model, with the paired bootstrap interval when measured."""
    if f is shipped:
        return "-"
    text = f"{100 * (shipped['val']['top1'] - f['val']['top1']):.2f}"
    interval = f.get("drop_interval")
    return text + (f" ({100 * interval[0]:.2f} to {100 * interval[1]:.2f})" if interval else "")


def _ratio(figures: dict, threads: int) -> str:
    text = f"{figures[f'ratio_{threads}t']:.3f}x"
    low, high = figures.get(f"ratio_{threads}t_range", (None, None))
    if low is not None and high - low >= 0.0005:
        text += f" ({low:.3f}-{high:.3f})"
    return text  # milliseconds differ between the machines of different sessions: see the provenance


def render(result: dict) -> str:
    """The sweep as a Markdown table and its provenance (README block and model card)."""
    figures = result["models"]
    lines = [
        "| model | target | channels kept | int8 val top-1 | points below shipped (95% interval) | "
        "coarse top-1 | size | bare invoke / shipped, 1 thread | 2 threads |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, f in ordered(figures):
        kept = f"{f['channels']['kept_fraction']:.0%}" if f.get("channels") else "100%"
        target = "-" if name == "shipped" else name
        label = "shipped `grocery_int8.tflite`" if name == "shipped" else "channels removed"
        if f.get("shipped_as"):
            label += f" (`{Path(f['shipped_as']).name}`)"
        lines.append(
            f"| {label} | {target} | {kept} | {_pct(f['val']['top1'])} | {_drop(f, figures['shipped'])} | "
            f"{_pct(f['val']['coarse_top1'])} | {f['size_bytes'] / 1e6:.2f} MB | {_ratio(f, 1)} | "
            f"{_ratio(f, 2)} |"
        )
    chosen = result.get("chosen")
    verdict = (
        f"Shipped: the {chosen} level as `{FAST.relative_to(ROOT)}` (rule fixed before the sweep: the most "
        f"accurate level at <= {result['target_ratio']:.2f}x on both thread counts that loses <= "
        f"{100 * result['target_drop']:.1f} points, else the most accurate fast one)."
        if chosen
        else f"No level reached {result['target_ratio']:.2f}x on both thread counts: nothing shipped."
    )
    sessions: dict[str, list[str]] = {}
    for name, f in ordered(figures):
        if name != "shipped":
            base = f.get("base_val_top1_float", result.get("base_val_top1_float"))
            ms = f.get("shipped_p50_ms")
            base_run = f.get("base", Level.base)
            key = (
                f"{f.get('measured', 'in an earlier session')} on {f.get('cpu') or 'this machine'}, "
                + ("" if base_run == Level.base else f"from runs/{base_run}, ")
                + f"base float val {_pct(base)}"
                + (f", shipped model {ms[0]:.2f} / {ms[1]:.2f} ms at 1 / 2 threads" if ms else "")
            )
            sessions.setdefault(key, []).append(name)
    provenance = "; ".join(f"{', '.join(names)}: measured {key}" for key, names in sessions.items())
    both = [
        name for name, f in ordered(figures) if _threads_timed(f.get("search_threads")) > 1 and not f.get("plan_from")
    ]
    search = (
        f"the search timed one thread, except for {', '.join(both)}: 1 and 2 threads, the target met at both"
        if both
        else "the search timed one thread"
    )
    if any(f.get("plan_from") for f in figures.values()):
        search += "; a level that keeps another level's channels ran no search"
    longer = [
        f"{f['fine_tune_epochs']} for {name}"
        + (f", which keeps the channels of {f['plan_from']}" if f.get("plan_from") else "")
        for name, f in ordered(figures)
        if f.get("fine_tune_epochs", result["fine_tune_epochs"]) != result["fine_tune_epochs"]
    ]
    epochs = f"{result['fine_tune_epochs']}" + (f" ({'; '.join(longer)})" if longer else "")
    refits = [_refit_note(name, f) for name, f in ordered(figures) if f.get("reconstruct")]
    refits += [_average_note(name, f, figures) for name, f in ordered(figures) if f.get("average_last")]
    resized: dict[tuple, list[str]] = {}  # input sizes recorded since kd-256; one note per size and target
    for name, f in ordered(figures):
        if f.get("input_px") not in (None, figures["shipped"].get("input_px")):
            resized.setdefault((f["input_px"], f["level"]), []).append(name)
    refits += [_size_note(names, figures) for names in resized.values()]
    resamples = figures["shipped"].get("interval_resamples", BOOTSTRAP_RESAMPLES)
    lines += [
        "",
        f"Each level: `--target-latency-ratio` chooses per-group fractions by timing and output damage "
        f"(train/latency_target.py), then {epochs} fine-tuning epochs distilled from the "
        "unpruned base (the recipe's main phase without QAT; for a -kd level, the round-2 candidate's main "
        "phase, and distilled from its three teachers), the recipe's QAT and the int8 export "
        f"({provenance}; {search}). "
        + "".join(f"{note} " for note in refits)
        + "Val: the official val split (296 images), so the figures share its optimism; the interval of a "
        f"drop resamples the val images {resamples} times "
        "with the shipped model and the level scored on the same draw (levels measured in an earlier session "
        "have none; photos taken in bursts are not independent, so the intervals are a floor); latency: p50 of "
        f"{RUNS} bare invokes per model, the levels of one measuring session interleaved with the shipped "
        f"model in one process (1 thread: call by call; 2: blocks of 10), median (range) over "
        f"{result.get('repeats', 1)} such sessions. {verdict} Command: `{result['command']}` "
        f"(one level: `--level 0.67`, a tagged rerun: `--level 0.7 --tag 2t`; measure and choose: "
        "`--measure --force`; raw: "
        f"`{FIGURES.relative_to(ROOT)}`, plot: `{PLOT.relative_to(ROOT)}`).",
    ]
    return "\n".join(lines + uniform_lines())


def _refit_note(name: str, f: dict) -> str:
    """One sentence on a level whose projections were refitted before fine-tuning."""
    note = (
        (
            f"{name} keeps the channels of {f['plan_from']} and refits its projections by least squares before "
            "fine-tuning (`--reconstruct-channels`)"
        )
        if f.get("plan_from")
        else f"{name} refits its projections by least squares before fine-tuning (`--reconstruct-channels`)"
    )
    check = f.get("before_fine_tuning")
    if check:
        note += (
            f"; before fine-tuning its val top-1 is {_pct(check['removed'])} with the channels removed and "
            f"{_pct(check['refitted'])} refitted (unpruned {_pct(check['unpruned'])}; `{check['command']}`)"
        )
    refitted = f.get("refitted_projections")
    if refitted:
        note += (
            f"; its run refitted {refitted[0]} of {refitted[1]} projections, keeping the others as they were "
            "because their refit did not help on held-out images"
        )
    return note + "."


def _average_note(name: str, f: dict, figures: dict) -> str:
    """One sentence on a level that keeps the mean weights of its fine-tune's last epochs."""
    source = f.get("plan_from")
    note = (
        f"{name} "
        + (f"keeps the channels of {source} and, after the same recipe, " if source else "keeps ")
        + f"the mean weights of its fine-tune's last {f['average_last']} epochs instead of the last epoch's "
        f"(`--prune-channels-average-last-epochs {f['average_last']}`, stochastic weight averaging)"
    )
    averaged, other = f.get("val_top1_averaged"), figures.get(source, {})
    if averaged and other.get("val_top1_float"):
        note += (
            f"; float val top-1 before QAT {_pct(averaged)} (the mean) against {_pct(other['val_top1_float'])} "
            f"({source}'s last epoch)"
        )
    paired = f.get("drop_vs_plan")
    if paired:
        low, high = (100 * x for x in paired["interval"])
        note += (
            f"; int8 {100 * paired['drop']:.2f} points below {paired['against']} (paired 95% interval "
            f"{low:.2f} to {high:.2f})"
        )
    return note + "."


def _fine_tune_val(run: Path) -> list[float]:
    """The channel fine-tune's val top-1 per epoch (the run's training_log.csv)."""
    import csv

    by_epoch = {}  # a resumed run may log an epoch twice: the later row is the one kept
    with RunDir(run).training_log.open(newline="") as rows:
        for row in csv.DictReader(rows):
            if row["phase"] == "prune_channels" and row.get("val_accuracy"):
                by_epoch[int(row["epoch"])] = float(row["val_accuracy"])
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def _size_note(names: list[str], figures: dict) -> str:
    """One sentence on the levels that run at another input size than the shipped model."""
    f = figures[names[0]]
    subject = " and ".join(names) + (" validate and export" if len(names) > 1 else " validates and exports")
    note = (
        f"{subject} at {f['input_px']} px instead of {figures['shipped']['input_px']}: "
        f"{'their' if len(names) > 1 else 'its'} target is {f['level']:.2f}x the unpruned network at that size "
        f"(the last two columns compare {'them' if len(names) > 1 else 'it'} with the shipped model, like "
        "every row)"
    )
    check = next((figures[name]["size_check"] for name in names if figures[name].get("size_check")), None)
    if check:
        small, large = str(f["input_px"]), str(check["sizes"][0])
        ratios = " / ".join(f"{r:.3f}x" for r in check["int8_ratio"].values())
        note += (
            f"; the unpruned base scores {_pct(check['val_top1_float'][small])} float val top-1 at {small} px "
            f"({_pct(check['val_top1_float'][large])} at {large}) and its int8 model runs at {ratios} the "
            f"{large}-px one at 1 / 2 threads (`{check['command']}`)"
        )
    return note + "."


def uniform_lines() -> list[str]:
    """The first sweep (the same fraction from every group), kept for comparison."""
    if not UNIFORM.exists():
        return []
    result = json.loads(UNIFORM.read_text())
    rows = [
        f"{name} removed: {_pct(f['val']['top1'])} at {f['ratio_1t']:.3f}x / {f['ratio_2t']:.3f}x"
        for name, f in result["models"].items()
        if name != "shipped"
    ]
    return [
        "",
        f"Tried first, the same fraction from every group ({result['fine_tune_epochs']} fine-tuning epochs, "
        f"BatchNorm frozen): {'; '.join(rows)} (int8 val top-1 at 1 / 2 threads; shipped "
        f"{_pct(result['models']['shipped']['val']['top1'])} in that run). Source: {result['command']} "
        f"(raw: `{UNIFORM.relative_to(ROOT)}`).",
    ]


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = result["models"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for threads, marker in zip(THREADS, "os", strict=True):
        xs = [figures[n][f"ratio_{threads}t"] for n in figures]
        ys = [100 * figures[n]["val"]["top1"] for n in figures]
        ax.plot(xs, ys, marker=marker, linestyle="none", label=f"{threads} thread{'s' if threads > 1 else ''}")
        for name, x, y in zip(figures, xs, ys, strict=True):
            if threads == THREADS[0]:
                ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    shipped = 100 * figures["shipped"]["val"]["top1"]
    ax.axvline(TARGET_RATIO, color="grey", linestyle=":", linewidth=1)
    ax.axhline(shipped - 100 * TARGET_DROP, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("bare invoke latency / shipped int8 (interleaved, p50)")
    ax.set_ylabel("val top-1 (%)")
    ax.set_title("Channel pruning on the grocery recipe (int8)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.partial.png")
    fig.savefig(tmp)
    tmp.replace(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "grocery_store"))
    parser.add_argument("--runs-dir", default=str(ROOT / "runs"))
    parser.add_argument(
        "--measure",
        action="store_true",
        help="only measure levels already trained and exported; levels trained in an earlier "
        "session keep the figures recorded for them",
    )
    parser.add_argument("--force", action="store_true", help=f"replace {FAST.name} and the figures")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="only rewrite the README table and the model card from the stored figures",
    )
    parser.add_argument(
        "--level",
        type=float,
        choices=sorted({level.ratio for level in LEVELS}),
        help="train and export this one level, then stop",
    )
    parser.add_argument(
        "--base-only",
        action="store_true",
        help="only train the unpruned base (runs/grocery_base; also a teacher of the round-2 recipe)",
    )
    parser.add_argument("--tag", default="", help="with --level: the level's rerun with this tag (see LEVELS)")
    parser.add_argument(
        "--size-check",
        action="store_true",
        help="with --level of a level with its own input size: the unpruned base's float val top-1 "
        "and int8 latency at both sizes (recorded in the run; --measure copies it)",
    )
    parser.add_argument(
        "--refit-check",
        action="store_true",
        help="with --level: val top-1 of the level's channels removed before fine-tuning, plainly "
        "and refitted by least squares (recorded in the run; --measure copies it)",
    )
    args = parser.parse_args()
    if args.render_only:
        publish(json.loads(FIGURES.read_text()))
        return 0
    # by name: a level's base and teachers come from LEVELS, not from the command line
    chosen_level = BY_NAME.get(Level(args.level, args.tag).name) if args.level is not None else None
    if args.level is not None and chosen_level is None:
        print(
            f"--level {args.level:g} --tag {args.tag!r} is not one of the sweep's LEVELS ({', '.join(BY_NAME)})",
            file=sys.stderr,
        )
        return 2
    dataset, runs = Path(args.dataset), Path(args.runs_dir)
    if args.size_check:
        if chosen_level is None:
            print("--size-check needs --level (and --tag) naming a level with its own input size", file=sys.stderr)
            return 2
        check = size_check(runs, chosen_level, dataset)
        small, large = str(chosen_level.image_size), str(check["sizes"][0])
        print(
            f"{chosen_level.name}: unpruned base float val top-1 {_pct(check['val_top1_float'][large])} at "
            f"{large} px, {_pct(check['val_top1_float'][small])} at {small} px; int8 {small} / {large} px: "
            + " / ".join(f"{r:.3f}x" for r in check["int8_ratio"].values())
            + " at 1 / 2 threads"
        )
        return 0
    if args.refit_check:
        if chosen_level is None:
            print("--refit-check needs --level (and --tag) naming a trained level", file=sys.stderr)
            return 2
        check = refit_check(runs, chosen_level, dataset)
        print(
            f"{chosen_level.name} before fine-tuning: unpruned {_pct(check['unpruned'])}, channels removed "
            f"{_pct(check['removed'])}, refitted {_pct(check['refitted'])}"
        )
        return 0
    if args.base_only:
        train_base(dataset, runs / "grocery_base")
        return 0
    if (FAST.exists() or FIGURES.exists()) and not args.force and args.level is None:
        print(f"{FAST} or {FIGURES} exists; pass --force to replace them", file=sys.stderr)
        return 2
    base = runs / "grocery_base"
    if not args.measure:
        train_base(dataset, base)
    from edgeshop.train import export, resume

    exported = {}
    for level in LEVELS if chosen_level is None else (chosen_level,):
        run = level_run(runs, level)
        model = run / "grocery_int8.tflite"
        if not args.measure and not _finished(run, model):
            level_base = runs / level.base
            if not _main_phase_done(level_base):
                print(
                    f"level {level.name} branches from {level_base}, whose main phase is not finished; make it "
                    "first (make grocery)",
                    file=sys.stderr,
                )
                return 2
            branch(level_base, level, run, base_config(dataset, level_base, level.recipe)[1])
            resume(run)
            export(run, model, "int8", force=True)
        exported[level.name] = model
    if chosen_level is not None:
        print(f"level {chosen_level.name} trained and exported: {exported[chosen_level.name]}")
        return 0
    previous = json.loads(FIGURES.read_text()) if FIGURES.exists() else None
    available = {name: path for name, path in exported.items() if path.is_file()}
    earlier = earlier_levels(previous, available, list(exported))
    missing = [name for name in exported if name not in available and name not in earlier]
    if missing:
        print(f"not trained yet: {missing}; train them with --level, or run without --measure", file=sys.stderr)
        return 2
    samples = discover(dataset / "val")
    hierarchy = read_hierarchy(dataset / "classes.csv")
    against = {name: BY_NAME[name].plan_from for name in available if BY_NAME[name].plan_from in available}
    result = measure({"shipped": SHIPPED, **available}, samples, hierarchy, reference="shipped", against=against)
    session = time.strftime("on %Y-%m-%d")
    base_metrics = _metrics(base)
    new = result["models"]
    from edgeshop.train import read_channel_plan

    for name in available:
        run = level_run(runs, BY_NAME[name])
        level_base_metrics = _metrics(runs / BY_NAME[name].base)
        metrics = RunDir(run).read_json(RunDir(run).metrics_file)
        plan = read_channel_plan(run) or {}
        search = plan.get("latency_target", {})
        new[name].update(
            level=BY_NAME[name].ratio,
            search_threads=search.get("threads"),
            channels=metrics.get("channels"),
            fine_tune_epochs=BY_NAME[name].epochs,
            plan_from=BY_NAME[name].plan_from or None,
            val_top1_float=metrics.get("val_top1_float"),
            base_val_top1_float=level_base_metrics.get("val_top1_float"),
            base=BY_NAME[name].base,
            measured=session,
            seconds=_level_seconds(metrics),
            cpu=result["machine"].get("cpu"),
            shipped_p50_ms=_shipped_ms(new["shipped"]),
            reconstruct=BY_NAME[name].reconstruct,
            average_last=BY_NAME[name].average_last or None,
            val_top1_averaged=metrics.get("val_top1_averaged_prune_channels"),
            fine_tune_val_top1=_fine_tune_val(run),
        )
        if plan.get("reconstruction"):  # what the run's own refit did (the refit check redoes it on the base)
            projections = plan["reconstruction"]["projections"].values()
            new[name]["refitted_projections"] = [sum(p["refitted"] for p in projections), len(projections)]
        if (run / REFIT_CHECK).is_file():
            new[name]["before_fine_tuning"] = json.loads((run / REFIT_CHECK).read_text())
        if (run / SIZE_CHECK).is_file():
            new[name]["size_check"] = json.loads((run / SIZE_CHECK).read_text())
    figures = {"shipped": new["shipped"], **{name: new.get(name) or earlier[name] for name in exported}}
    result["models"] = figures
    chosen = choose_level(figures, list(exported))
    seconds = {
        **(previous or {}).get("seconds", {}),
        **{_seconds_key(BY_NAME[n]): f["seconds"] for n, f in figures.items() if f.get("seconds")},
    }
    if base_metrics:
        seconds["base"] = round(sum(base_metrics.get("train_seconds_per_phase", {}).values()), 1)
    result.update(
        levels=list(BY_NAME),
        fine_tune_epochs=FINE_TUNE_EPOCHS,
        target_ratio=TARGET_RATIO,
        target_drop=TARGET_DROP,
        chosen=chosen,
        seconds=seconds,
        command=COMMAND,
        base_val_top1_float=base_metrics.get("val_top1_float") or (previous or {}).get("base_val_top1_float"),
    )
    for f in figures.values():
        f.pop("shipped_as", None)
    if (
        chosen is not None
        and chosen not in available
        and not (previous and previous.get("chosen") == chosen and FAST.is_file())
    ):
        # checked before anything is written: the figures, the README and FAST stay as they were
        print(
            f"the rule chose {chosen}, trained in an earlier session and not in {FAST}; retrain it with "
            f"--level {BY_NAME[chosen].ratio:g} --tag {BY_NAME[chosen].tag!r}",
            file=sys.stderr,
        )
        return 2
    if chosen is not None:
        figures[chosen]["shipped_as"] = str(FAST.relative_to(ROOT))
    # The figures and the file they describe change together (each write is atomic).
    write_json_atomic(FIGURES, result)
    if chosen in available:
        tmp = FAST.with_name(f".{FAST.name}.partial")
        shutil.copy2(available[chosen], tmp)
        tmp.replace(FAST)
    elif chosen is None:
        FAST.unlink(missing_ok=True)  # no level is fast enough: nothing may stand as the fast model
    plot(result, PLOT)
    for name, f in figures.items():
        print(
            f"{name:8s} top-1 {f['val']['top1']:.4f}  {f['size_bytes'] / 1e6:.2f} MB  "
            f"1t {f['ratio_1t']:.3f}x  2t {f['ratio_2t']:.3f}x"
        )
    print(f"chosen: {chosen} -> {FAST if chosen else 'nothing shipped (no level meets the latency target)'}")
    publish(result)
    return 0


def earlier_levels(previous: dict | None, available: dict[str, Path], names: list[str]) -> dict[str, dict]:
    """The figures of levels trained in an earlier session (their run directories gone), with
    that session's provenance: each ratio was measured against the shipped model in that
    session's process, so it is kept as it was, never re-timed against today's shipped model."""
    if not previous:
        return {}
    earlier = {
        name: dict(f)
        for name, f in previous.get("models", {}).items()
        if name != "shipped" and name not in available and name in names
    }
    for f in earlier.values():
        f.setdefault("base_val_top1_float", previous.get("base_val_top1_float"))
        f.setdefault("measured", "in an earlier session")
        f.setdefault("cpu", previous.get("machine", {}).get("cpu"))
        f.setdefault("shipped_p50_ms", _shipped_ms(previous["models"]["shipped"]))
    return earlier


def publish(result: dict) -> None:
    """The README table and the model card from the sweep's figures."""
    replace_block("channels", render(result))
    subprocess.run([sys.executable, str(STUDY / "render_model_card.py")], check=True)


def _shipped_ms(shipped: dict) -> list[float]:
    """The shipped model's p50 (1 thread, 2 threads) in one measuring session: the ratios' denominator."""
    return [round(shipped[f"latency_{t}t"]["p50_ms"], 2) for t in THREADS]


def _threads_timed(record: int | list[int] | None) -> int:
    """How many thread counts a level's search timed: its channels.json says 1 (an int) before
    the search timed several (a list); levels of an earlier session have no record (one)."""
    return len(record) if isinstance(record, list) else 1


def _seconds_key(level: Level) -> str:
    """The key of a level's training seconds (the base-taught levels keep their first sessions' keys)."""
    return f"{level.ratio:g}" + (f"-{level.tag}" if level.tag else "")


def _metrics(run: Path) -> dict:
    return RunDir(run).read_json(RunDir(run).metrics_file) or {}


def _main_phase_done(run: Path) -> bool:
    return "train" in RunDir(run).completed()


def _finished(run: Path, model: Path) -> bool:
    """The level is trained (its last phase completed) and exported: nothing to redo."""
    return model.is_file() and "qat" in RunDir(run).completed()


def _level_seconds(metrics: dict) -> float:
    """Training seconds of a level's own phases (the base's head and train phases excluded),
    summed over every session that worked on them (the run's state keeps them)."""
    phases = metrics.get("train_seconds_per_phase", {})
    return round(sum(v for k, v in phases.items() if k not in ("head", "train")), 1)


def ordered(figures: dict) -> list[tuple[str, dict]]:
    """The shipped model first, then the levels by target ratio, highest first (one ratio's
    levels in the order of LEVELS, whatever order the figures were stored in)."""
    names = list(BY_NAME)
    return sorted(
        figures.items(), key=lambda item: (-item[1].get("level", 9.0), names.index(item[0]) if item[0] in names else -1)
    )


if __name__ == "__main__":
    sys.exit(main())
