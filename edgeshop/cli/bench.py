"""edgeshop-bench: latency of a .tflite on this device (runtime only, no TensorFlow).

Bare interpreter invoke by default; ``--end-to-end IMAGE`` also times
``Classifier.classify`` (decode excluded; preprocessing, invoke and ranking included).
Several models (files, or a folder of one run's exports) are timed interleaved in one
process and compared: a table, then one line recommending the fastest at equal accuracy
on this machine's CPU class.
"""

from __future__ import annotations

import argparse
import sys

from edgeshop.cli._common import add_threads, parse, positive_int, run_command, timed_threads


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeshop-bench", description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="+", help=".tflite model; several, or a folder of exports, to compare them")
    add_threads(p, sweep_default=(1,))
    p.add_argument("--runs", type=positive_int, default=100, help="timed runs (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs after the cold first one (default 10)")
    p.add_argument("--end-to-end", metavar="IMAGE", help="also time Classifier.classify on this image (one model)")
    p.add_argument("--data", metavar="DIR", help="comparing models: measure each one's top-1 on these labelled "
                   "images (a folder of class folders or a split file) instead of taking its card's figure")
    p.add_argument("--backend", default="auto", help="auto | litert | tflite_runtime | tensorflow")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--force", action="store_true", help="replace --json if it exists")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    threads = timed_threads(parser, args)

    def body() -> int:
        from edgeshop._io import check_outputs, write_json_atomic
        from edgeshop.errors import EdgeshopError

        check_outputs([(args.json, "json", "--json")], force=args.force, inputs=[*args.model, args.end_to_end])
        from edgeshop.report.format_choice import compare_models, model_files
        from edgeshop.runtime.bench import benchmark_model

        files = model_files(args.model)
        if len(files) > 1:
            if args.end_to_end:
                raise EdgeshopError("--end-to-end times one model; drop it to compare several")
            comparison = compare_models(files, threads, runs=args.runs, warmup=args.warmup, data=args.data)
            print(render_comparison(comparison))
            if args.json:
                write_json_atomic(args.json, comparison)
            return 0
        results = [
            benchmark_model(files[0], t, runs=args.runs, warmup=args.warmup, image=args.end_to_end,
                            backend=args.backend)
            for t in threads
        ]
        for r in results:
            line = (f"{r['model']}: {r['threads']} thread(s), {r['backend']}: invoke p50 {r['p50_ms']:.2f} ms "
                    f"(p90 {r['p90_ms']:.2f}, p99 {r['p99_ms']:.2f}, first {r['first_ms']:.1f}), {r['fps']:.1f} fps")
            if "end_to_end" in r:
                e = r["end_to_end"]
                line += f"; classify p50 {e['p50_ms']:.2f} ms ({e['p50_ms'] / r['p50_ms']:.2f}x invoke)"
            print(line)
        if args.json:
            write_json_atomic(args.json, results[0] if len(results) == 1 else {"sweep": results})
        return 0

    return run_command("edgeshop-bench", body)


def render_comparison(comparison: dict) -> str:
    """The table of compared models and the one-line recommendation for this machine's CPU class."""
    from pathlib import Path

    from edgeshop.runtime.cpu_class import RECOMMENDED

    threads = [str(t) for t in comparison["threads"]]
    rows = comparison["rows"]
    names = {row["model"]: Path(row["model"]).name for row in rows}
    if len(set(names.values())) < len(names):
        names = {row["model"]: row["model"] for row in rows}
    width = max(len(n) for n in names.values())
    header = f"{'model':<{width}}  {'top-1':>7}  {'MB':>6}  " + "  ".join(f"{t + ' thr ms':>9}" for t in threads)
    lines = [header]
    for row in rows:
        top1 = "?" if row["top1"] is None else f"{row['top1'] * 100:.2f}%"
        lines.append(f"{names[row['model']]:<{width}}  {top1:>7}  {row['size_bytes'] / 1e6:>6.2f}  "
                     + "  ".join(f"{row['p50_ms'][t]:>9.2f}" for t in threads))
    sources = sorted({row["top1_source"] for row in rows})
    machine = comparison["machine"]
    lines.append(f"(median invoke of {comparison['runs']} interleaved runs; top-1: {'; '.join(sources)})")
    r, cpu = comparison["recommendation"], comparison["cpu_class"]
    if r["accuracy_known"]:
        accuracy = (f"of the models within {r['points']} top-1 point of the most accurate "
                    f"({r['best_top1'] * 100:.2f}%), at {r['top1'] * 100:.2f}%")
    else:
        accuracy = "by speed alone (no model's accuracy is known: give --data DIR)"
    line = (f"Recommendation on this {cpu} machine ({machine['cpu']}, {machine['cores']} cores): "
            f"{names[r['model']]}, the fastest {accuracy}, {r['speedup_vs_slowest']:.2f}x the slowest; "
            f"edgeshop-export --for auto writes {RECOMMENDED[cpu].format} here.")
    if r["excluded_unknown_accuracy"]:
        line += " Not compared (accuracy unknown): " + ", ".join(names[m] for m in r["excluded_unknown_accuracy"])
    return "\n".join(lines + [line])


if __name__ == "__main__":
    sys.exit(main())
