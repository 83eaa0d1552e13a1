"""Input pipelines measured (issue 23): peak memory vs dataset size, and epoch time on Grocery.

    python studies/grocery/pipeline_bench.py synthetic    # 2,000 and 20,000 synthetic images, tiny net at 96 px
    python studies/grocery/pipeline_bench.py grocery      # one epoch of the Grocery recipe, memory vs stream
    python studies/grocery/pipeline_bench.py readme       # rewrite the study's pipeline table

synthetic: writes JPEG datasets under --work (default /tmp/edgeshop_pipeline_bench, never in
the repository), then runs the real command, ``edgeshop-train --arch tiny --image-size 96
--epochs 1 --val VAL`` (the same 300 validation images for every size), once per size and
pipeline, each in its own process; peak RSS is that process's ru_maxrss (os.wait4), images/s
is training images / the epoch's seconds in its training_log.csv (validation pass included).

grocery: the Grocery recipe's main phase (configs/grocery_round1.json: Lite0
from ImageNet, 240 px training, batch 32, CutMix/MixUp 0.5, frozen BatchNorm), one epoch
over the official train split with each pipeline, alternating in one process (M S S M with
--rounds 2), each from the same initial weights; no validation. Also recorded: the
time before training (the file listing and duplicate check; for the in-memory pipeline also
the decode of train and val), and the load average.

Figures go to studies/grocery/figures/bench/pipeline.json (each command rewrites its own section).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import study_paths  # noqa: F401  (puts the repository root and tools/ on sys.path)
from readme_block import replace_block  # noqa: E402
from study_paths import FIGURES as STUDY_FIGURES
from study_paths import ROOT

from edgeshop import write_json_atomic  # noqa: E402
from edgeshop.train import RunDir  # noqa: E402

FIGURES = STUDY_FIGURES / "bench" / "pipeline.json"
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic image classes of the tests
SIZES = (2000, 20000)
VAL_IMAGES = 300
SOURCE_SIDE = 160  # synthetic photos are larger than the input, as real ones are


def _figures() -> dict:
    return json.loads(FIGURES.read_text()) if FIGURES.is_file() else {}


def _save(section: str, value: dict) -> None:
    figures = _figures()
    figures[section] = value
    write_json_atomic(FIGURES, figures)


def _machine() -> dict:
    from edgeshop import machine_info

    return machine_info()


# -- synthetic: memory vs dataset size -------------------------------------------------------------

def make_images(root: Path, count: int, seed: int) -> Path:
    """``count`` JPEGs of the tests' synthetic classes under root/<class>/ (kept if already there)."""
    import cv2
    import numpy as np
    from synthetic import CLASSES, draw

    done = root / ".complete"
    if done.is_file() and int(done.read_text()) == count:
        return root
    rng = np.random.default_rng(seed)
    for i in range(count):
        label = CLASSES[i % len(CLASSES)]
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), draw(label, SOURCE_SIDE, rng), [cv2.IMWRITE_JPEG_QUALITY, 90])
    done.write_text(str(count))
    return root


def train_once(data: Path, val: Path, out: Path, pipeline: str, batch_size: int) -> dict:
    """edgeshop-train for one epoch in a process of its own: its peak RSS and epoch time."""
    # This checkout's edgeshop-train (an installed entry point may run another checkout's code).
    command = [sys.executable, "-m", "edgeshop.cli.train", "--data", str(data), "--val", str(val),
               "--out", str(out), "--force", "--arch", "tiny", "--image-size", "96", "--epochs", "1",
               "--batch-size", str(batch_size), "--input-pipeline", pipeline]
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=False,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr.decode(errors='replace')[-3000:]}")
    wall = time.perf_counter() - started
    with RunDir(out).training_log.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    report = RunDir(out).read_json(RunDir(out).data_report_file)
    epoch = float(rows[-1]["seconds"])
    return {"pipeline": pipeline, "chosen": report.get("input_pipeline", pipeline),
            "train_images": report["train_images"], "val_images": report["val_images"],
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "epoch_seconds": epoch,
            "images_per_second": round(report["train_images"] / epoch, 1), "wall_seconds": round(wall, 1),
            "load_average_before": round(load_before, 2), "command": " ".join(command[3:])}


def synthetic(args: argparse.Namespace) -> None:
    work = Path(args.work)
    val = make_images(work / "val", VAL_IMAGES, seed=1)
    runs = []
    for pipeline in args.pipelines:
        for size in SIZES:
            data = make_images(work / f"train_{size}", size, seed=0)
            result = train_once(data, val, work / f"run_{pipeline}_{size}", pipeline, args.batch_size)
            print(json.dumps(result), flush=True)
            runs.append(result)
    ratios = {}
    for pipeline in args.pipelines:
        rss = {r["train_images"]: r["peak_rss_mb"] for r in runs if r["pipeline"] == pipeline}
        small, large = sorted(rss)
        ratios[pipeline] = round(rss[large] / rss[small], 3)
    command = "python studies/grocery/pipeline_bench.py synthetic" + (
        f" --pipelines {' '.join(args.pipelines)} --section {args.section}" if args.section != "synthetic" else "")
    _save(args.section, {"runs": runs, "rss_ratio_20000_over_2000": ratios, "batch_size": args.batch_size,
                         "source_side_px": SOURCE_SIDE, "machine": _machine(), "command": command})
    print(f"peak RSS 20,000 / 2,000 images: {ratios}")


# -- grocery: epoch time, memory vs stream -------------------------------------------------------

class _StepTimes:
    """Wall time at the end of every batch (the steady rate leaves out the first steps' tracing)."""

    def __new__(cls):
        from edgeshop.train import keras

        class Callback(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times = []

            def on_train_batch_end(self, batch, logs=None):
                self.times.append(time.perf_counter())

        return Callback()


def grocery(args: argparse.Namespace) -> None:
    import gc

    from grocery_recipe import recipe_config

    from edgeshop.train import Finetune, TrainingRun, train_images

    dataset = Path(args.dataset)
    recipe = json.loads((ROOT / "configs" / "grocery_round1.json").read_text())
    config = recipe_config(dataset, Path(args.work) / "grocery_run", recipe)
    # the main phase alone (val is not run)
    config.schedule.head_epochs, config.schedule.epochs, config.compression.qat = 0, 1, False
    run = TrainingRun(config, force=True, log=lambda *_: None)
    phase = next(p for p in run.phases if isinstance(p, Finetune))
    size = phase.image_size(run)
    started_session = time.time()
    pipelines = args.pipelines
    order = [*pipelines, *reversed(pipelines)] if args.rounds == 2 else pipelines * args.rounds
    cache = Path(args.work) / "grocery_cache"
    shutil.rmtree(cache, ignore_errors=True)
    epochs = []
    for pipeline in order:
        # "cache": the streamed pipeline with --cache-dir, its cache written by an untimed pass first
        run.config.runtime.input_pipeline = "memory" if pipeline == "memory" else "stream"
        run.config.runtime.cache_dir = str(cache) if pipeline == "cache" else None
        load_average = os.getloadavg()
        started = time.perf_counter()
        run._load_data()
        if pipeline == "cache" and not list(cache.glob("*.index")):
            for _ in train_images(run.data, run.config, None, soft=False):
                pass
        load_seconds = time.perf_counter() - started
        steps = math.ceil(run.data.n_train / config.schedule.batch_size)
        model = run._phase_model(phase, steps)
        run._compile(model, phase, steps)
        timer = _StepTimes()
        started = time.perf_counter()
        model.fit(run._train_dataset(size), epochs=1, verbose=0, callbacks=[timer])
        epoch_seconds = time.perf_counter() - started
        skip = min(5, len(timer.times) - 2)
        steady = (len(timer.times) - 1 - skip) * config.schedule.batch_size / (timer.times[-1] - timer.times[skip])
        result = {"pipeline": pipeline, "train_images": run.data.n_train, "steps": len(timer.times),
                  "epoch_seconds": round(epoch_seconds, 1), "steady_images_per_second": round(steady, 2),
                  "before_training_seconds": round(load_seconds, 1),  # listing, duplicate check (+ decode)
                  "load_average_1_5_15_before": [round(v, 2) for v in load_average],
                  "load_average_1_5_15_after": [round(v, 2) for v in os.getloadavg()]}
        print(json.dumps(result), flush=True)
        epochs.append(result)
        del model
        run.data.train = run.data.val = None
        gc.collect()
    mean = {p: sum(e["epoch_seconds"] for e in epochs if e["pipeline"] == p) / order.count(p) for p in pipelines}
    session = {"epochs": epochs, "mean_epoch_seconds": {k: round(v, 1) for k, v in mean.items()},
               "stream_over_memory": round(mean["stream"] / mean["memory"], 3) if "stream" in mean else None,
               **({"cache_over_memory": round(mean["cache"] / mean["memory"], 3)} if "cache" in mean else {}),
               "image_size": size,
               "batch_size": config.schedule.batch_size, "machine": _machine(),
               "command": f"python studies/grocery/pipeline_bench.py grocery --rounds {args.rounds} --pipelines "
                          f"{' '.join(pipelines)}",
               "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started_session))}
    # Sessions accumulate (--fresh starts over): on a shared machine one session is one sample of the load.
    previous = [] if args.fresh else _figures().get("grocery", {}).get("sessions", [])
    _save("grocery", {"sessions": [*previous, session]})
    print(f"mean epoch seconds: {mean}")


# -- the README table ------------------------------------------------------------------------------

def readme(_: argparse.Namespace) -> None:
    figures = _figures()
    lines = []
    if "synthetic" in figures:
        s = figures["synthetic"]
        lines += [f"One epoch of `edgeshop-train --arch tiny --image-size 96 --epochs 1 --batch-size {s['batch_size']}"
                  f" --val VAL` (300 validation images) on synthetic {s['source_side_px']} px JPEGs, each run in a "
                  f"process of its own (`{s['command']}`; figures: `{FIGURES.relative_to(ROOT)}`; "
                  f"{s['machine']['cores']} "
                  f"cores, {s['machine']['cpu']}):", "",
                  "| pipeline | training images | peak RSS (MB) | epoch (s) | images/s | load average before |",
                  "|---|---|---|---|---|---|"]
        for r in s["runs"]:
            lines.append(f"| {r['pipeline']} | {r['train_images']:,} | {r['peak_rss_mb']:.0f} | "
                         f"{r['epoch_seconds']:.1f} | {r['images_per_second']:.0f} | {r['load_average_before']:.1f} |")
        ratios = ", ".join(f"{k} {v:.2f}x" for k, v in s["rss_ratio_20000_over_2000"].items())
        lines += ["", f"Peak RSS at 20,000 images over 2,000: {ratios}.", ""]
    if "grocery" in figures:
        sessions = figures["grocery"]["sessions"]
        g = sessions[-1]
        lines += [f"One epoch of the Grocery recipe's main phase (EfficientNet-Lite0 at {g['image_size']} px, batch "
                  f"{g['batch_size']}, CutMix/MixUp, {g['epochs'][0]['train_images']:,} training images), the two "
                  f"pipelines alternating in one process, each from the same ImageNet weights; "
                  + "; ".join(f"session {n}: `{x['command']}` at {x['started']}" for n, x in enumerate(sessions, 1))
                  + ":", "",
                  "| session | pipeline | epoch (s) | steady images/s | before training (s) | load average before |",
                  "|---|---|---|---|---|---|"]
        for number, session in enumerate(sessions, 1):
            for e in session["epochs"]:
                label = {"cache": "stream, `--cache-dir`"}.get(e["pipeline"], e["pipeline"])
                lines.append(f"| {number} | {label} | {e['epoch_seconds']:.1f} | "
                             f"{e['steady_images_per_second']:.1f} | {e['before_training_seconds']:.1f} | "
                             f"{e['load_average_1_5_15_before'][0]:.1f} |")
        def ratio(name: str) -> str:
            values = [f"{s[name]:.3f}" for s in sessions if s.get(name) is not None]
            return ", ".join(values) if values else "not measured"

        lines += ["", f"Mean epoch time per session, stream / memory: {ratio('stream_over_memory')}; "
                  f"stream with `--cache-dir` (cache written beforehand) / memory: {ratio('cache_over_memory')}."]
    replace_block("pipeline", "\n".join(lines).rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("synthetic", help="peak RSS and images/s at 2,000 and 20,000 synthetic images")
    s.add_argument("--work", default="/tmp/edgeshop_pipeline_bench")
    s.add_argument("--pipelines", nargs="+", default=["stream", "memory"], choices=("stream", "memory", "auto"),
                   help="auto: the default, which decides by the RAM available (the runs record what it chose)")
    s.add_argument("--section", default="synthetic",
                   help="the key of bench/pipeline.json to write (e.g. synthetic_auto, keeping the README's figures)")
    s.add_argument("--batch-size", type=int, default=32)
    g = sub.add_parser("grocery", help="one epoch of the Grocery recipe with each pipeline, alternating")
    g.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "grocery_store"))
    g.add_argument("--work", default="/tmp/edgeshop_pipeline_bench")
    g.add_argument("--rounds", type=int, default=2, help="2: memory, stream, stream, memory")
    g.add_argument("--pipelines", nargs="+", default=["memory", "stream"], choices=("memory", "stream", "cache"),
                   help="cache: stream with --cache-dir, the cache written before the timed epoch")
    g.add_argument("--fresh", action="store_true", help=f"replace the earlier sessions in {FIGURES.relative_to(ROOT)}")
    sub.add_parser("readme", help=f"rewrite the study's table from {FIGURES.relative_to(ROOT)}")
    args = parser.parse_args()
    {"synthetic": synthetic, "grocery": grocery, "readme": readme}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
