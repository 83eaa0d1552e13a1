"""edgeshop-export: turn a training run into a .tflite with labels and preprocessing inside."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeshop.cli._common import parse, run_command
from edgeshop.runtime.cpu_class import EXPORT_TARGETS
from edgeshop.train.verify_gate import MIN_TOP1_AGREEMENT  # TensorFlow-free: --help stays instant


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeshop-export",
        description="Convert a run directory to TFLite. --int8 writes a fully integer model "
        "(QAT model if the run has one, else post-training quantization on training images) "
        "and fails if any tensor or op is not integer. Every file carries standard TFLite Metadata "
        "and labels, so MediaPipe Tasks (Android, iOS, web, Python) opens it as it is.",
    )
    p.add_argument("run_dir", nargs="?", help="directory written by edgeshop-train")
    p.add_argument("--reexport", metavar="MODEL",
                   help="instead of a run directory: an edgeshop .tflite from an earlier version, rewritten to "
                        "the current form (uint8 I/O, standard metadata) with unchanged scores")
    p.add_argument("--out", required=True, help="the .tflite file to write")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--int8", dest="fmt", action="store_const", const="int8",
                      help="full integer; uint8 input (raw pixels) and uint8 scores, as phone runtimes require")
    kind.add_argument("--float16", dest="fmt", action="store_const", const="float16", help="float16 weights")
    kind.add_argument("--dynamic-range", dest="fmt", action="store_const", const="dynamic",
                      help="int8 conv and dense weights, float activations quantized at run time")
    kind.add_argument("--float32", dest="fmt", action="store_const", const="float32", help="plain float (default)")
    kind.add_argument("--for", dest="target", choices=EXPORT_TARGETS,
                      help="the format recommended for this CPU class (auto: this machine's; the table is "
                      "edgeshop.runtime.cpu_class.RECOMMENDED); check it with edgeshop-bench on the device")
    p.add_argument("--int8-io", dest="io_type", action="store_const", const="int8", default="uint8",
                   help="full-integer models: int8 input/output tensors instead of uint8 (edgeshop's runtime and "
                        "plain interpreters read them; MediaPipe Tasks and the TFLite Task Library refuse them)")
    p.add_argument("--name", help="the model's name as people see it (the browser page, phone apps); "
                   "default: the training data folder's name (Grocery for --data Grocery/train)")
    p.add_argument("--author", default="", help="author written into the standard metadata")
    p.add_argument("--license", default="", help="licence of the model written into the standard metadata")
    p.add_argument("--description", default="", help="model description for the standard metadata "
                   "(default: architecture, quantization and class count)")
    p.add_argument("--ptq", action="store_true", help="with --int8: quantize the float model post-training "
                   "even when the run has a QAT model")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip comparing the exported model with the Keras model (by default an export "
                        "agreeing on fewer top-1 classes than its format's minimum is refused: "
                        + ", ".join(f"{fmt} {share:.0%}" for fmt, share in MIN_TOP1_AGREEMENT.items())
                        .replace("%", "%%") + ")")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                   help="skip fitting the softmax temperature and the unknown-product threshold on the run's "
                        "validation images (done by default, so scores are probabilities in every client)")
    p.add_argument("--force", action="store_true",
                   help="replace --out and --json if they exist (only a model, and a JSON file, are replaced)")
    p.add_argument("--json", help="also write the export report (audit, verification) to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    if (args.run_dir is None) == (args.reexport is None):
        parser.error("give a run directory or --reexport MODEL (one of them)")
    if args.reexport and (args.fmt or args.target or args.ptq or not args.calibrate):
        parser.error("--reexport keeps the model's own format and temperature; drop --int8/--float16/--for/--ptq/"
                     "--no-calibrate (edgeshop-calibrate changes a model's temperature)")
    if args.target:
        from edgeshop.runtime.cpu_class import recommended_format

        cpu, recommendation = recommended_format(args.target)
        args.fmt = recommendation.format
        print(f"--for {args.target}: {cpu} -> {recommendation.format} ({recommendation.evidence})")

    if args.name is not None:
        from edgeshop.tflite.modelcard import display_name_problem

        problem = display_name_problem(args.name)
        if problem:
            parser.error(f"--name {args.name!r} {problem}")

    def body() -> int:
        from edgeshop._io import check_outputs

        # before TensorFlow is imported, and before the model is written: a bad --json refuses both
        check_outputs([(args.out, "model", "--out"), (args.json, "json", "--json")], force=args.force,
                      inputs=[args.run_dir, args.reexport])
        if args.run_dir:
            from edgeshop.train.run_dir import require_run_dir

            require_run_dir(args.run_dir)
        else:
            from edgeshop.runtime.classifier import _read_model_file

            _read_model_file(Path(args.reexport))
        from edgeshop.runtime.audit import format_audit
        from edgeshop.train.exporter import export, reexport
        from edgeshop.train.tflite_metadata import Provenance
        from edgeshop.utils import write_json_atomic

        provenance = Provenance(author=args.author, license=args.license, description=args.description)
        if args.reexport:
            report = reexport(args.reexport, args.out, force=args.force, io_type=args.io_type, provenance=provenance,
                              display_name=args.name)
        else:
            report = export(args.run_dir, args.out, args.fmt or "float32", ptq=args.ptq, force=args.force,
                            check=args.verify, io_type=args.io_type, provenance=provenance, calibrate=args.calibrate,
                            display_name=args.name)
        print(f"wrote {report['path']} ({report['size_bytes'] / 1e6:.2f} MB, {report['method']})")
        print(format_audit(report["audit"], list_float=report["format"] == "int8"))
        if "max_abs_score_diff_vs_original" in report:
            print(f"  vs the original on {report['images']} probe images: max score diff "
                  f"{report['max_abs_score_diff_vs_original']:.2e}")
        if "verify_vs_keras" in report:
            v = report["verify_vs_keras"]
            print(f"  vs Keras on {v['images']} training images: top-1 agreement {v['top1_agreement']:.3f}, "
                  f"max score diff {v['max_abs_score_diff']:.2e}")
        calibration = report.get("calibration")
        if isinstance(calibration, dict):
            from edgeshop.cli.calibrate import format_record

            print(format_record({**calibration, "path": report["path"]}))
        elif calibration:
            print(f"  {calibration}")
        if args.json:
            write_json_atomic(args.json, report)
        return 0

    return run_command("edgeshop-export", body)


if __name__ == "__main__":
    sys.exit(main())
