"""edgeshop-card: the model card document of a training run, measured on your own labelled images.

    edgeshop card RUN_DIR model_int8.tflite --reference model_fp16.tflite --data VAL

Evaluates the exported model (and its float reference) on VAL with edgeshop-eval's code,
times both in one process with edgeshop-bench's code, and writes RUN_DIR/figures.json and
RUN_DIR/MODEL_CARD.md from it: the same document the shipped grocery model has. Runtime only.
(The card embedded in the .tflite is another thing: the model's metadata, read here.)
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from edgeshop.cli._common import add_model, add_threads, parse, positive_int, run_command, timed_threads


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeshop-card", description=__doc__.splitlines()[0])
    p.add_argument("run", help="the training run directory (edgeshop-train --out)")
    add_model(p, "the exported .tflite the document describes (e.g. the int8 model)")
    p.add_argument("--reference", help="its float reference (e.g. edgeshop-export --float16): compared row by row")
    p.add_argument("--data", required=True, help="labelled images the run did not train on (class folders, "
                   "split file or CSV manifest)")
    p.add_argument("--classes", help="classes.csv for split files (default: beside the split file)")
    p.add_argument("--hierarchy", help="Grocery-style classes.csv (fine name, id, coarse name): adds coarse top-1")
    add_threads(p, sweep_default=(1, 2))
    p.add_argument("--runs", type=positive_int, default=200, help="timed invokes per model and thread count")
    p.add_argument("--out", help="the Markdown document (default RUN_DIR/MODEL_CARD.md); the figures go beside it "
                   "as figures.json")
    p.add_argument("--force", action="store_true", help="replace an existing document and figures file")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    threads = timed_threads(parser, args)
    command = shlex.join(["edgeshop-card", *(sys.argv[1:] if argv is None else argv)])

    def body() -> int:
        from edgeshop._io import check_outputs, write_bytes_atomic, write_json_atomic
        from edgeshop.data import coarse_index, discover, read_hierarchy
        from edgeshop.errors import EdgeshopError
        from edgeshop.report.model_card_document import render_model_card_document, run_figures
        from edgeshop.runtime.classifier import Classifier
        from edgeshop.train.config import recipe_config  # a plain dataclass: no TensorFlow
        from edgeshop.train.run_dir import RunDir

        run = Path(args.run)
        folder = RunDir(run)
        missing = [p.name for p in (folder.config_file, folder.metrics_file, folder.data_report_file)
                   if not p.is_file()]
        if missing:
            raise EdgeshopError(f"{run}: not a finished edgeshop run directory (no {', '.join(missing)}); "
                                "pass the --out of a completed edgeshop-train")
        out = Path(args.out) if args.out else run / "MODEL_CARD.md"
        figures_file = out.with_name("figures.json")
        check_outputs([(out, "markdown", "--out"), (figures_file, "json", "figures.json")], force=args.force,
                      inputs=[args.model, args.reference, args.data, args.classes, args.hierarchy])
        samples = discover(args.data, args.classes)
        hierarchy = None
        if args.hierarchy:
            hierarchy = read_hierarchy(Path(args.hierarchy))
            coarse_index(Classifier(args.model).labels, hierarchy, args.hierarchy)  # refuse before measuring
        reference = Path(args.reference) if args.reference else None
        figures = run_figures(run, Path(args.model), reference, args.data, samples, hierarchy, command,
                              threads, args.runs)
        write_json_atomic(figures_file, figures)
        write_bytes_atomic(out, render_model_card_document(figures, recipe_config(figures["recipe"])).encode("utf-8"))
        print(f"wrote {out} and {figures_file}: top-1 {figures['model']['val']['top1']:.2%} "
              f"on {figures['model']['val']['n']} images")
        return 0

    return run_command("edgeshop-card", body)


if __name__ == "__main__":
    sys.exit(main())
