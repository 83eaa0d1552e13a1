"""Re-export the shipped grocery models in the standard-client format, prove nothing else changed.

    python studies/grocery/reexport_shipped.py [--dataset ../shared/datasets/grocery_store] [--runs 3000]

For models/grocery/grocery_{int8,fp16}.tflite: `edgeshop.train.exporter.reexport` (uint8 I/O for
the int8 model, standard TFLite Metadata, one stored archive; no training run needed); then
1. every val image's scores through edgeshop.Classifier, old file vs new: must be identical;
2. bare-invoke latency of the int8 model with the old int8 I/O vs the new uint8 I/O (the
   uint8 ends add one QUANTIZE op each), interleaved in one process, 2 threads, medians;
writes studies/grocery/figures/reexport.json and updates the figures file's sizes and I/O audit.
It runs on files of the old format only (on files already re-exported it would compare a
file with itself and overwrite round 1's record, so it refuses); the old files are in git:
`git show 26687d0:PATH`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import study_paths  # (also puts the repository root and tools/ on sys.path)
from study_paths import FIGURES, ROOT, STUDY

from edgeshop import (  # noqa: E402
    Classifier,
    audit_model,
    machine_info,
    time_models,
    write_json_atomic,
)
from edgeshop.data import discover  # noqa: E402
from edgeshop.report import predict  # noqa: E402

MODELS = study_paths.SHIPPED
SHIPPED = study_paths.SHIPPED_FILES
PROVENANCE = {"author": "edgeshop contributors",
              "license": "MIT (Grocery Store Dataset) + Apache-2.0 (EfficientNet-Lite0 ImageNet weights)"}


def io_latency(old: Path, new: Path, threads: int, runs: int) -> dict:
    """Bare invoke, int8 I/O (old) vs uint8 I/O (new), alternating in blocks in one process."""
    stats = time_models({"int8_io": old.read_bytes(), "uint8_io": new.read_bytes()}, threads, runs=runs, warmup=20,
                        block=10)
    return {"threads": threads, "runs": runs, **{k: v.to_dict() for k, v in stats.items()},
            "uint8_over_int8_p50": stats["uint8_io"].p50_ms / stats["int8_io"].p50_ms}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "grocery_store"))
    parser.add_argument("--runs", type=int, default=3000, help="timed invokes per I/O type")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    # reexport.json records round 1's move to the standard format (the card says so); shipped files
    # already in that format would overwrite the record with a comparison of a file with itself
    io = audit_model(SHIPPED["int8"].read_bytes())["input"]["dtype"]
    if io == "uint8":
        print(f"{SHIPPED['int8']}: already in the standard-client format (uint8 I/O); reexport.json records "
              "round 1's re-export. To redo it, put round 1's old-format files in place first: "
              "git show 26687d0:models/grocery/grocery_int8.tflite (and grocery_fp16.tflite)", file=sys.stderr)
        return 2
    from edgeshop.train import Provenance, reexport

    samples = discover(Path(args.dataset) / "val")
    record: dict = {"machine": machine_info(), "val_images": len(samples), "command":
                    "python studies/grocery/reexport_shipped.py", "models": {}}
    with tempfile.TemporaryDirectory() as folder:
        originals = {}
        for fmt, path in SHIPPED.items():
            originals[fmt] = Path(folder) / path.name
            originals[fmt].write_bytes(path.read_bytes())
            report = reexport(originals[fmt], path, force=True, provenance=Provenance(**PROVENANCE))
            old_scores = predict(Classifier(originals[fmt]), samples).scores
            new_scores = predict(Classifier(path), samples).scores
            record["models"][fmt] = {
                "file": path.name, "size_bytes_before": originals[fmt].stat().st_size,
                "size_bytes": report["size_bytes"],
                "io_before": audit_model(originals[fmt].read_bytes())["input"]["dtype"],
                "io_after": report["audit"]["input"]["dtype"],
                "val_max_abs_score_diff": float(np.abs(old_scores - new_scores).max()),
                "val_top1_changed": int((old_scores.argmax(1) != new_scores.argmax(1)).sum()),
            }
            print(f"{path.name}: {record['models'][fmt]}")
        record["int8_io_latency"] = io_latency(originals["int8"], SHIPPED["int8"], args.threads, args.runs)
    ratio = record["int8_io_latency"]["uint8_over_int8_p50"]
    print(f"bare invoke, uint8 I/O / int8 I/O (p50, {args.threads} threads): {ratio:.3f}x")
    write_json_atomic(FIGURES / "reexport.json", record)

    figures_file = MODELS / "figures_efficientnet_lite0.json"
    figures = json.loads(figures_file.read_text())
    for fmt, path in SHIPPED.items():
        audit = audit_model(path.read_bytes())
        figures[fmt]["size_bytes"] = path.stat().st_size
        figures[fmt]["audit"].update({"input": audit["input"], "output": audit["output"]})
    write_json_atomic(figures_file, figures)
    subprocess.run([sys.executable, str(STUDY / "render_model_card.py")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
