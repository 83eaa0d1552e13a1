"""edgeshop-enroll: add new products to a model from a few photos each (or remove some), on the device."""

from __future__ import annotations

import argparse
import sys

from edgeshop.cli._common import parse, run_and_record


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeshop-enroll",
        description="Add products to an edgeshop .tflite without retraining: each new product's row of the "
        "classifier layer is imprinted from 1-20 photos (their centred, normalised mean embedding, each photo "
        "and its mirror image), then refitted by softmax regression against the old classes' stored "
        "samples; each product's photos are checked leave-one-out and a product recognised below 60% is named "
        "in a warning. The new model "
        "keeps every old label (except --remove), stays fully integer if it was, keeps its standard metadata and "
        "card, and loads in MediaPipe Tasks like any export. Runtime only, no TensorFlow.",
    )
    p.add_argument("model", help=".tflite model written by edgeshop-export (and calibrated, as exports are)")
    p.add_argument("--data", help="folder with one sub-folder of photos per new product: NEW/<product>/*.jpg, "
                   "1-20 photos directly in each (links followed; add the product's catalogue image as one more "
                   "photo if you have it: it helps, alone it does not work); the folder's name is the product's label")
    p.add_argument("--remove", action="append", default=[], metavar="LABEL",
                   help="drop this product from the model (repeatable; with --data, a product can be replaced)")
    p.add_argument("--imprint-gain", type=float, metavar="G",
                   help="multiply the new rows' measured length by G: larger wins more of the new products' images "
                   "and takes more of the old ones' (default: 1.2 for a cosine head, 1.0 for a linear one)")
    p.add_argument("--no-refit", action="store_true",
                   help="imprint only: skip the softmax refit of the new rows (the refit needs the old classes' "
                   "samples that edgeshop-calibrate stores in the card)")
    p.add_argument("--out", required=True, help="the .tflite to write")
    p.add_argument("--force", action="store_true", help="replace --out and --json if they exist")
    p.add_argument("--json", help="also write the enrolment record to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse(build_parser(), argv)

    def compute() -> dict:
        from edgeshop._io import check_outputs

        check_outputs([(args.out, "model", "--out"), (args.json, "json", "--json")], force=args.force,
                      inputs=[args.model, args.data])
        from edgeshop.adapt.enroll import enroll_file

        return enroll_file(args.model, args.out, data=args.data, remove=args.remove, force=args.force,
                           gain=args.imprint_gain, refit=not args.no_refit)

    return run_and_record("edgeshop-enroll", compute, format_record, args.json)


def format_record(record: dict) -> str:
    lines = [f"wrote {record['path']}: {record['classes_before']} -> {record['classes_after']} classes "
             f"({record['storage']} weights)"]
    if record["added"]:
        lines.append(f"  imprinted at gain {record['gain']:g} (--imprint-gain) from {record['views_per_photo']} "
                     "view(s) of each photo" + ("; new rows refitted" if isinstance(record["refit"], dict) else
                                                f"; refit: {record['refit']}"))
    for entry in record["added"]:
        skipped = f", {entry['skipped']} unreadable skipped" if entry["skipped"] else ""
        lines.append(f"  added {entry['label']}: {entry['photos']} photo(s){skipped}; recognised "
                     f"{entry['recognised']:.0%} of them ({entry['check']})")
    lines.extend(f"  removed {label}" for label in record["removed"])
    for item in record["skipped_files"]:
        lines.append(f"  skipped {item['reason']}")
    lines.extend(f"warning: {warning}" for warning in record.get("warnings", []))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
