"""Write the README's demo block (<!-- demo:... -->) from the figures `edgeshop-demo` wrote.

    make demo-figures     # runs the demo with and without --deterministic, then this script

bench/demo.json is the default demo (`--deterministic`); bench/demo_nondeterministic.json,
when present, is the same demo with TensorFlow's default kernels, for the cost of
determinism. Every number in the block is read from those two files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]

from readme_block import replace_block  # noqa: E402

DEMO = ROOT / "bench" / "demo.json"
NONDETERMINISTIC = ROOT / "bench" / "demo_nondeterministic.json"


def demo_block(demo: dict, other: dict | None) -> str:
    f32, i8 = demo["models"]["float32"], demo["models"]["int8"]
    s = demo["settings"]
    lines = [
        f"What `{demo['command']}` printed on this machine ({demo['machine']['cores']} cores, "
        f"{demo['machine']['cpu']}; figures: `bench/demo.json`; latency = median of 50 `Classifier.classify` "
        f"calls, {s['threads']} threads):",
        "",
        "| model   | top-1 | size (MB) | median latency (ms) |",
        "|---------|-------|-----------|---------------------|",
        *(f"| {fmt:7s} | {m['top1']:5.1%} | {m['size_bytes'] / 1e6:9.2f} | {m['classify_p50_ms']:19.2f} |"
          for fmt, m in demo["models"].items()),
        "",
        f"int8 / float32: size {i8['size_bytes'] / f32['size_bytes']:.2f}x, latency "
        f"{i8['classify_p50_ms'] / f32['classify_p50_ms']:.2f}x: one run on a machine "
        + (f"whose load average was {demo['load_average_1_5_15min'][0]:g} on {demo['machine']['cores']} cores"
           if "load_average_1_5_15min" in demo else "shared with other jobs")
        + ", so latency here is noise; `make bench` measures it properly "
        "([Evaluation and benchmarks](evaluation.md#latency-on-your-device)).",
        f"It trained for {s['epochs']} epochs at {s['image_size']} px on {demo['train_images']} of the "
        f"{demo['train_images'] + demo['val_images']} training images (the other {demo['val_images']} are its "
        f"validation split) and classified the {demo['test_images']} held-out images (one image is "
        f"{100 / demo['test_images']:.1f} points): a pipeline check, not a model.",
        f"The demo took {demo['seconds_total']:.0f} s, {demo['seconds_train']:.0f} s of it training, "
        + ("with `--deterministic` kernels (the default)" if s["deterministic"] else "without `--deterministic`")
        + ".",
    ]
    if other:
        lines.append(
            f"The same demo with `--no-deterministic` took {other['seconds_total']:.0f} s "
            f"({other['seconds_train']:.0f} s training; `bench/demo_nondeterministic.json`) and printed top-1 "
            f"{other['models']['float32']['top1']:.1%} / {other['models']['int8']['top1']:.1%}.")
    lines.append("Rerun both and rewrite this block: `make demo-figures`.")
    return "\n".join(lines)


def main() -> None:
    demo = json.loads(DEMO.read_text())
    other = json.loads(NONDETERMINISTIC.read_text()) if NONDETERMINISTIC.exists() else None
    where = replace_block("demo", demo_block(demo, other))
    print(f"wrote the demo block of {where}")


if __name__ == "__main__":
    main()
