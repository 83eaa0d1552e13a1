"""edgeshop-eval: accuracy of a .tflite model on labelled images (runtime only, no TensorFlow)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeshop.cli._common import positive_int, run_command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeshop-eval",
        description="Top-1/top-5, per-class precision/recall/F1, confusion matrix, most confused pairs, "
        "calibration error, coarse accuracy with a class hierarchy, and agreement with another model.",
    )
    p.add_argument("model", help=".tflite model written by edgeshop-export")
    p.add_argument("--data", required=True, help="class folders, a split .txt (with classes.csv) or a path,label .csv")
    p.add_argument("--classes", help="classes.csv for split files (default: beside the split file)")
    p.add_argument("--hierarchy", help="Grocery-style classes.csv (fine name, id, coarse name): adds coarse_top1")
    p.add_argument("--compare", help="another .tflite (e.g. the float model): top-1 agreement and accuracy delta")
    p.add_argument("--threads", type=positive_int, default=None, help="interpreter threads")
    p.add_argument("--json", help="write every figure to this JSON file")
    p.add_argument("--report", help="write report.md (summary, per-class table, confused pairs) into this folder")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        import numpy as np

        from edgeshop.datasets import coarse_index, discover, read_hierarchy
        from edgeshop.errors import EdgeshopError
        from edgeshop.report.evaluate import predict
        from edgeshop.report.markdown import evaluation_markdown
        from edgeshop.report.metrics import summarize
        from edgeshop.runtime.classifier import Classifier
        from edgeshop.utils import write_bytes_atomic, write_json_atomic

        samples = discover(args.data, args.classes)
        classifier = Classifier(args.model, num_threads=args.threads)
        hierarchy = None
        if args.hierarchy:
            hierarchy = read_hierarchy(Path(args.hierarchy))
            coarse_index(classifier.labels, hierarchy, args.hierarchy)  # refuse before classifying, naming the file
        result = predict(classifier, samples)
        figures = summarize(result.truth, result.scores, result.labels, hierarchy)
        figures.update(model=str(args.model), data=str(args.data), skipped=len(result.skipped),
                       skipped_files=[{"file": str(p), "reason": r} for p, r in result.skipped])
        if args.compare:
            other = predict(Classifier(args.compare, num_threads=args.threads), samples)
            if other.labels != result.labels or other.paths != result.paths:
                raise EdgeshopError(f"{args.compare}: its labels differ from {args.model}'s; nothing to compare")
            other_figures = summarize(other.truth, other.scores, other.labels, hierarchy)
            figures["compare"] = {
                "model": str(args.compare),
                "top1": other_figures["top1"],
                "top1_delta": figures["top1"] - other_figures["top1"],
                "top1_agreement": float(np.mean(result.scores.argmax(1) == other.scores.argmax(1))),
            }
        line = f"{args.model}: top-1 {figures['top1']:.4f}  top-5 {figures['top5']:.4f}  n={figures['n']}"
        if "coarse_top1" in figures:
            line += f"  coarse top-1 {figures['coarse_top1']:.4f}"
        print(line + (f"  ({len(result.skipped)} unreadable images skipped)" if result.skipped else ""))
        if "compare" in figures:
            c = figures["compare"]
            print(f"vs {c['model']}: top-1 {c['top1']:.4f}, delta {c['top1_delta']:+.4f}, "
                  f"top-1 agreement {c['top1_agreement']:.4f}")
        if args.json:
            write_json_atomic(args.json, figures)
        if args.report:
            write_bytes_atomic(Path(args.report) / "report.md", evaluation_markdown(figures).encode())
        return 0

    return run_command("edgeshop-eval", body)


if __name__ == "__main__":
    sys.exit(main())
