"""edgeshop-compare: float32 / float16 / dynamic / PTQ int8 / QAT int8 of trained runs, side by side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeshop.cli._common import parse, positive_int, run_command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeshop-compare",
        description="Export every compression variant of one or more runs, evaluate and time them on the same "
        "data and machine, and write comparison.md, comparison.html (plots inlined) and comparison.json.",
    )
    p.add_argument("runs", nargs="+", help="run directories written by edgeshop-train")
    p.add_argument("--data", required=True, help="labelled images to evaluate on (same forms as edgeshop-eval)")
    p.add_argument("--out", required=True, help="folder for the report and the exported variants")
    p.add_argument("--classes", help="classes.csv for split files")
    p.add_argument("--hierarchy", help="Grocery-style classes.csv: adds coarse accuracy")
    p.add_argument("--threads", type=positive_int, default=1, help="interpreter threads for the timings (default 1)")
    p.add_argument("--runs-timed", type=positive_int, default=50, help="timed invokes per variant (default 50)")
    p.add_argument("--force", action="store_true", help="replace the report and models of an earlier comparison "
                   "in --out")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse(build_parser(), argv)

    def body() -> int:
        from edgeshop._io import check_inputs, check_outputs
        from edgeshop.data import discover
        from edgeshop.train.run_dir import require_run_dir

        # all refused before TensorFlow is imported
        for run in args.runs:
            require_run_dir(run)
        inputs = [*args.runs, args.data, args.classes, args.hierarchy]
        check_inputs(args.out, inputs)
        check_outputs([(Path(args.out) / f"comparison.{ext}", kind, "--out")
                       for ext, kind in (("md", "markdown"), ("html", "markdown"), ("json", "json"))],
                      force=args.force, inputs=inputs)
        discover(args.data, args.classes)
        from edgeshop.report.compare import markdown
        from edgeshop.train.variants import compare

        result = compare([Path(r) for r in args.runs], args.data, Path(args.out), args.threads, args.runs_timed,
                         args.hierarchy, args.classes)
        print(markdown(result))
        print(f"wrote {Path(args.out) / 'comparison.html'}")
        return 0

    return run_command("edgeshop-compare", body)


if __name__ == "__main__":
    sys.exit(main())
