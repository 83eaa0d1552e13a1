"""edgeshop-calibrate: give an existing .tflite calibrated scores and an unknown-product threshold."""

from __future__ import annotations

import argparse
import sys

from edgeshop.cli._common import parse, run_and_record


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeshop-calibrate",
        description="Fit the model's softmax temperature on labelled images (validation images, not the training "
        "ones) and write it into the model, so every client (edgeshop, MediaPipe, the Task Library) gets scores "
        "that are probabilities; top-1 does not change. Also stores the unknown-product threshold: the top score "
        "that keeps --tpr of the known images. Labels, metadata and card are kept. Runtime only, no TensorFlow.",
    )
    p.add_argument("model", help=".tflite model written by edgeshop-export")
    p.add_argument("--data", required=True, help="labelled images of the model's classes: class folders, a split "
                   ".txt (with classes.csv) or a path,label .csv")
    p.add_argument("--classes", help="classes.csv for split files (default: beside the split file)")
    p.add_argument("--out", required=True, help="the calibrated .tflite to write")
    p.add_argument("--tpr", type=float, default=0.95,
                   help="share of known images the unknown threshold keeps (default 0.95)")
    p.add_argument("--force", action="store_true", help="replace --out and --json if they exist")
    p.add_argument("--json", help="also write the calibration record to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse(build_parser(), argv)
    if not 0 < args.tpr <= 1:
        build_parser().error(f"--tpr must be in (0, 1], got {args.tpr}")

    def compute() -> dict:
        from edgeshop._io import check_outputs

        check_outputs([(args.out, "model", "--out"), (args.json, "json", "--json")], force=args.force,
                      inputs=[args.model, args.data, args.classes])
        from edgeshop.adapt.calibrate import calibrate_file

        return calibrate_file(args.model, args.data, args.out, classes_csv=args.classes, tpr=args.tpr,
                              force=args.force)

    return run_and_record("edgeshop-calibrate", compute, format_record, args.json)


def format_record(record: dict) -> str:
    c, u = record["calibration"], record["unknown"]
    floor = c["after_crossfit"]["ece_of_a_calibrated_model"]["median"]
    lines = [f"wrote {record.get('path', 'model')}: temperature {c['temperature']:.3f} (softmax beta {c['beta']:.4f})"
             + (" at the search bound: the images cannot pin it" if c["at_bound"] else ""),
             f"  {c['images']} images ({c['skipped']} unreadable, skipped); ECE {c['before']['ece']:.3f} -> "
             f"{c['after_crossfit']['ece']:.3f} (each half scored with the temperature fitted on the other half; "
             f"a perfectly calibrated model would show {floor:.3f} "
             f"on as many images), "
             f"top-1 {c['before']['top1']:.4f} -> {c['after_crossfit']['top1']:.4f}, "
             f"{c['top1_changed']} top-1 changed by the shipped temperature",
             f"  unknown threshold {u['threshold']:.4f}: keeps {u['known_tpr']:.0%} of these known images "
             f"({u['known_kept_other_half']:.1%} of the other half when chosen on one half)"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
