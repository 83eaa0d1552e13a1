"""edgeshop-export: turn a training run into a .tflite with labels and preprocessing inside."""

from __future__ import annotations

import argparse
import sys

from edgeshop.cli._common import run_command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeshop-export",
        description="Convert a run directory to TFLite. --int8 writes a fully integer model "
        "(QAT model if the run has one, else post-training quantization on training images) "
        "and fails if any tensor or op is not integer.",
    )
    p.add_argument("run_dir", help="directory written by edgeshop-train")
    p.add_argument("--out", required=True, help="the .tflite file to write")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--int8", dest="fmt", action="store_const", const="int8", help="full integer (int8 I/O)")
    kind.add_argument("--float16", dest="fmt", action="store_const", const="float16", help="float16 weights")
    kind.add_argument("--dynamic-range", dest="fmt", action="store_const", const="dynamic",
                      help="int8 weights, float activations")
    kind.add_argument("--float32", dest="fmt", action="store_const", const="float32", help="plain float (default)")
    p.add_argument("--ptq", action="store_true", help="with --int8: quantize the float model post-training "
                   "even when the run has a QAT model")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip comparing the exported model with the Keras model")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--json", help="also write the export report (audit, verification) to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from edgeshop.runtime.audit import format_audit
        from edgeshop.train.export import export
        from edgeshop.utils import write_json_atomic

        report = export(args.run_dir, args.out, args.fmt or "float32", ptq=args.ptq, force=args.force,
                        check=args.verify)
        print(f"wrote {report['path']} ({report['size_bytes'] / 1e6:.2f} MB, {report['method']})")
        print(format_audit(report["audit"], list_float=report["format"] == "int8"))
        if "verify_vs_keras" in report:
            v = report["verify_vs_keras"]
            print(f"  vs Keras on {v['images']} training images: top-1 agreement {v['top1_agreement']:.3f}, "
                  f"max score diff {v['max_abs_score_diff']:.2e}")
        if args.json:
            write_json_atomic(args.json, report)
        return 0

    return run_command("edgeshop-export", body)


if __name__ == "__main__":
    sys.exit(main())
