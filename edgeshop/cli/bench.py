"""edgeshop-bench: latency of a .tflite on this device (runtime only, no TensorFlow).

Bare interpreter invoke by default; ``--end-to-end IMAGE`` also times
``Classifier.classify`` (decode excluded; preprocessing, invoke and ranking included).
"""

from __future__ import annotations

import argparse
import sys

from edgeshop.cli._common import add_threads, parse, positive_int, run_command, timed_threads


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeshop-bench", description=__doc__.splitlines()[0])
    p.add_argument("model", help=".tflite model")
    add_threads(p, sweep_default=(1,))
    p.add_argument("--runs", type=positive_int, default=100, help="timed runs (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs after the cold first one (default 10)")
    p.add_argument("--end-to-end", metavar="IMAGE", help="also time Classifier.classify on this image")
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

        check_outputs([(args.json, "json", "--json")], force=args.force, inputs=[args.model, args.end_to_end])
        from edgeshop.runtime.bench import benchmark_model

        results = [
            benchmark_model(args.model, t, runs=args.runs, warmup=args.warmup, image=args.end_to_end,
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


if __name__ == "__main__":
    sys.exit(main())
