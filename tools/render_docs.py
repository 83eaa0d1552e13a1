"""Render every generated block of the documentation from the committed figures files, in one
command (no measurement is rerun):

    python tools/render_docs.py

It writes the README's figures table (below) and reruns each study tool's render-only step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))

from readme_block import replace_block  # noqa: E402

from edgeshop.report import wilson_interval  # noqa: E402

BENCH = ROOT / "bench" / "results.json"
DEMO = ROOT / "bench" / "demo.json"
GROCERY = ROOT / "models" / "grocery" / "figures_efficientnet_lite0.json"
CHANNELS = ROOT / "studies" / "grocery" / "figures" / "channel_pruning.json"  # the fast model: a level of the sweep

# Each study script's own render-only command (studies/grocery/): it rewrites its blocks from its stored JSON.
RENDER_COMMANDS = (
    ["studies/grocery/render_model_card.py"],
    ["tools/demo_block.py"],
    ["studies/grocery/channel_sweep.py", "--render-only"],
    ["studies/grocery/open_set_benchmark.py", "--render-only"],
    ["studies/grocery/open_set_protocol.py", "--render-only"],
    ["studies/grocery/outlier_exposure_proxy.py", "--render-only"],
    ["studies/grocery/pipeline_bench.py", "readme"],
)


def _accuracy(top1: float, n: int) -> str:
    low, high = wilson_interval(round(top1 * n), n)
    return f"{100 * top1:.2f}% ({100 * low:.1f}-{100 * high:.1f})"


def machine_name(machine: dict) -> str:
    """The machine of a latency figure with its CPU class (runtime/cpu_class.py), which decides
    how fast int8 runs there; a results file written before `make bench` recorded the class says so."""
    name = f"a {machine['cores']}-core {machine['cpu']}"
    if "cpu_class" in machine:
        return f"{name} (CPU class `{machine['cpu_class']}`)"
    return f"{name} whose CPU class that run did not record (rerun `make bench` to record it)"


def figures_block(bench: dict, channels: dict) -> str:
    """The README's one figures table: accuracy on held-out photos with its 95% interval, size,
    latency with the machine it was measured on, each row with its source."""
    n = bench["accuracy"]["images"]
    latency = {t: bench["threads"][t]["latency"] for t in ("1", "2")}
    fast = channels["models"][channels["chosen"]]
    rows = [
        ("`grocery_int8.tflite` (shipped)", _accuracy(bench["accuracy"]["int8"], n), bench["files"]["int8"]["bytes"],
         f"{latency['1']['litert_int8']['p50_ms']:.2f} / {latency['2']['litert_int8']['p50_ms']:.2f} ms",
         "`make bench`"),
        ("`grocery_fp16.tflite` (its float twin)", _accuracy(bench["accuracy"]["float16"], n),
         bench["files"]["float16"]["bytes"],
         f"{latency['1']['litert_float16']['p50_ms']:.2f} / {latency['2']['litert_float16']['p50_ms']:.2f} ms",
         "`make bench`"),
        ("`grocery_int8_fast.tflite` (channels removed)", _accuracy(fast["val"]["top1"], fast["val"]["n"]),
         fast["size_bytes"], f"{fast['ratio_1t']:.2f}x / {fast['ratio_2t']:.2f}x the shipped model",
         "`make channel-sweep`"),
    ]
    lines = [
        "| model | val top-1 (95% interval) | size | latency, 1 / 2 threads | source |",
        "|---|---|---|---|---|",
        *(f"| {name} | {top1} | {size / 1e6:.2f} MB | {ms} | {source} |" for name, top1, size, ms, source in rows),
        "",
        f"Val: the Grocery Store dataset's official val split ({n} photos, never trained on).",
        f"Latency: median bare invoke (`make bench`) on one machine, {machine_name(bench['machine'])}; the fast",
        "model's ratio is measured against the shipped model in one process. These times hold for that machine's",
        "CPU class only: on an AVX2-only x86 CPU the int8 file is no faster than float32. On AVX2 or arm64, export",
        "with `edgeshop export RUN --for auto` and time the formats on the device with `edgeshop bench`",
        "([which format on which CPU](docs/evaluation.md#which-format-on-which-cpu)).",
        "The model card `models/grocery/README.md` has per-class figures and limitations.",
    ]
    return "\n".join(lines)


def recipes_block(demo: dict, grocery: dict) -> str:
    """The README's two recipes with the time and held-out accuracy their own runs recorded."""
    demo_int8, val = demo["models"]["int8"], grocery["int8"]["val"]
    return "\n".join([
        "| recipe | command | time (2 cores) | held-out top-1, int8 |",
        "|---|---|---|---|",
        f"| quick: the demo subset, {demo['train_images'] + demo['val_images']} photos "
        f"| `make demo` | {demo['seconds_total'] / 60:.1f} min | {100 * demo_int8['top1']:.1f}% on "
        f"{demo['test_images']} test photos |",
        f"| good: 81 grocery products, {grocery['data_report']['train_images']:,} photos, distilled "
        f"| `make grocery` | {grocery['wall_seconds_train_and_export'] / 60:.0f} min (+ its teachers) "
        f"| {100 * val['top1']:.2f}% on {val['n']} val photos |",
    ])


def main() -> int:
    replace_block("recipes", recipes_block(json.loads(DEMO.read_text()), json.loads(GROCERY.read_text())))
    replace_block("figures", figures_block(json.loads(BENCH.read_text()), json.loads(CHANNELS.read_text())))
    for command in RENDER_COMMANDS:
        subprocess.run([sys.executable, *command], cwd=ROOT, check=True)
    print("rendered every documentation block from its figures file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
