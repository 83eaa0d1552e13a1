"""edgeshop-eval: accuracy of a .tflite model on labelled images (runtime only, no TensorFlow)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeshop.cli._common import add_threads, parse, run_command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeshop-eval",
        description="Top-1/top-5, per-class precision/recall/F1, confusion matrix, most confused pairs, "
        "calibration error (with and without the model's temperature), coarse accuracy with a class hierarchy, "
        "agreement with another model, and with --unknown how well the model tells products it does not know.",
    )
    p.add_argument("model", help=".tflite model written by edgeshop-export")
    p.add_argument("--data", required=True, help="class folders, a split .txt (with classes.csv) or a path,label .csv")
    p.add_argument("--classes", help="classes.csv for split files (default: beside the split file)")
    p.add_argument("--hierarchy", help="Grocery-style classes.csv (fine name, id, coarse name): adds coarse_top1")
    p.add_argument("--compare", help="another .tflite (e.g. the float model): top-1 agreement and accuracy delta")
    add_threads(p)
    p.add_argument("--unknown", metavar="DIR", help="images of products the model does not know (any layout): "
                   "unknown_auroc, FPR at 95%% TPR and known-class accuracy at the model's unknown threshold, for "
                   "max score, max logit and energy")
    p.add_argument("--reference", metavar="DIR", help="with --unknown: training images of the known products, "
                   "which adds the embedding k-nearest-neighbour method")
    p.add_argument("--json", help="write every figure to this JSON file")
    p.add_argument("--report", help="write report.md (summary, most confused pairs, reliability table, per-class "
                   "table) and reliability.png (reliability diagram; needs the report extra) into this folder")
    p.add_argument("--force", action="store_true", help="replace --json and the --report files if they exist")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse(build_parser(), argv)

    def body() -> int:
        check_eval_outputs(args)
        import numpy as np

        from edgeshop.data import coarse_index, discover, read_hierarchy
        from edgeshop.errors import EdgeshopError
        from edgeshop.report.evaluate import predict
        from edgeshop.report.markdown import evaluation_markdown, head_markdown
        from edgeshop.report.metrics import summarize
        from edgeshop.runtime.classifier import Classifier
        from edgeshop.utils import write_bytes_atomic, write_json_atomic

        samples = discover(args.data, args.classes)
        classifier = Classifier(args.model, threads=args.threads)
        hierarchy = None
        if args.hierarchy:
            hierarchy = read_hierarchy(Path(args.hierarchy))
            coarse_index(classifier.labels, hierarchy, args.hierarchy)  # refuse before classifying, naming the file
        result = predict(classifier, samples)
        figures = summarize(result.truth, result.scores, result.labels, hierarchy)
        figures.update(model=str(args.model), data=str(args.data), skipped=len(result.skipped),
                       skipped_files=[{"file": str(p), "reason": r} for p, r in result.skipped])
        if args.compare:
            other = predict(Classifier(args.compare, threads=args.threads), samples)
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
        curves = head_figures(classifier, samples, result, figures, args.unknown, args.reference)
        for line in head_markdown(figures):  # the calibration and unknown-product lines, as in report.md
            if line and not line.startswith("!["):
                print(line.removeprefix("- "))
        if args.json:
            write_json_atomic(args.json, figures, compact_lists=True)
        if args.report:
            from edgeshop.report.calibration import reliability_diagram

            reliability_diagram(Path(args.report) / "reliability.png", curves, title=Path(args.model).name)
            figures["reliability_diagram"] = "reliability.png"
            write_bytes_atomic(Path(args.report) / "report.md", evaluation_markdown(figures).encode())
        return 0

    return run_command("edgeshop-eval", body)


def report_files(folder: str) -> list[tuple[Path, str, str]]:
    """(path, kind, flag) of each file --report writes."""
    return [(Path(folder) / "report.md", "markdown", "--report"), (Path(folder) / "reliability.png", "png", "--report")]


def check_eval_outputs(args: argparse.Namespace) -> None:
    """Refuse, before the model is loaded, outputs that cannot be written or must not be replaced."""
    from edgeshop._io import check_inputs, check_outputs
    from edgeshop.errors import OutputError

    inputs = [args.model, args.data, args.classes, args.hierarchy, args.compare, args.unknown, args.reference]
    outputs = [(args.json, "json", "--json")]
    if args.report:
        report = Path(args.report)
        if report.exists() and not report.is_dir():
            raise OutputError(f"{report}: --report is a file; give a folder for report.md and reliability.png")
        check_inputs(report, inputs, "--report")
        outputs += report_files(args.report)
    check_outputs(outputs, force=args.force, inputs=inputs)


def head_figures(classifier, samples, result, figures: dict, unknown_dir: str | None, reference_dir: str | None):
    """Add the calibration figures (models with a temperature) and, with ``unknown_dir``, the
    unknown-product figures to ``figures``; returns the reliability curves {name: (truth, scores)}."""
    import numpy as np

    from edgeshop.adapt.probe import HeadProbe
    from edgeshop.adapt.temperature import softmax
    from edgeshop.data import unlabelled_samples
    from edgeshop.errors import ModelLoadError
    from edgeshop.report.metrics import expected_calibration_error
    from edgeshop.report.openset import unknown_figures
    from edgeshop.tflite.tflite_head import softmax_beta

    try:
        beta = softmax_beta(classifier.content, str(classifier.path))
    except ModelLoadError:
        if unknown_dir:
            raise
        beta = 1.0  # not an edgeshop classifier head: no temperature to report
    if abs(beta - 1.0) < 1e-6 and not unknown_dir:
        return {"model": (result.truth, result.scores)}
    # The probe's scores are the model's own (same graph); it adds the logits and the embedding.
    probe = HeadProbe(classifier)  # images streamed from disk, not decoded into memory first
    outputs, truth, _ = probe.run_samples(samples, classifier.labels, "probing the model's head")
    curves = {"model": (truth, outputs["scores"])}
    if abs(beta - 1.0) > 1e-6:
        # Without the temperature: softmax of the same logits with beta = 1 (numpy; an int8
        # model's own softmax differs from it by less than one output step, 1/256).
        plain = softmax(outputs["logits"]).astype(np.float32)
        curves = {"without temperature": (truth, plain), "with the model's temperature": (truth, outputs["scores"])}
        fitted = classifier.card.extra.get("calibration", {})
        figures["calibration"] = {
            "beta": beta, "temperature": 1.0 / beta, "ece": expected_calibration_error(truth, outputs["scores"]),
            "ece_without_temperature": expected_calibration_error(truth, plain),
            "top1_without_temperature": float(np.mean(plain.argmax(1) == truth)),
            "fitted_on": {"data": fitted.get("data"), "images": fitted.get("images")},
        }
    if unknown_dir:
        other_outputs, _, other_skipped = probe.run_samples(unlabelled_samples(unknown_dir),
                                                            description="probing the unknown images")
        reference = None
        if reference_dir:
            reference = probe.run_samples(unlabelled_samples(reference_dir),
                                          description="probing the reference images")[0].get("embedding")
        source = "model card" if classifier.card.extra.get("unknown") else \
            "none: the model has no unknown threshold (run edgeshop-calibrate)"
        figures["unknown"] = {**unknown_figures(truth, outputs, other_outputs, classifier.unknown_threshold,
                                                reference=reference),
                              "data": str(unknown_dir), "skipped": len(other_skipped), "threshold_source": source}
        for key in ("unknown_auroc", "unknown_fpr_at_95tpr", "known_top1_at_threshold"):
            figures[key] = figures["unknown"][key]
    return curves


if __name__ == "__main__":
    sys.exit(main())
