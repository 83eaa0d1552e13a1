"""edgeshop-demo: the whole pipeline on the bundled grocery subset, in a few minutes.

Trains EfficientNet-Lite0 (ImageNet-initialised) on edgeshop/demo_data/train (package data,
so an installed wheel has the photos too), prunes it to 50% sparsity, runs int8 QAT,
exports float32 and int8 .tflite files, classifies the held-out edgeshop/demo_data/test
images with edgeshop.Classifier, and prints float32 vs
int8: accuracy, file size and median latency; the same figures go to OUT/demo_figures.json
(the README's demo table is rendered from a committed copy: tools/demo_block.py).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from edgeshop import DEMO_DATA
from edgeshop.cli._common import parse, positive_int, run_command

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = DEMO_DATA  # 10 Grocery Store classes, MIT licence
SHIPPED_MODEL = REPO / "models" / "grocery" / "grocery_int8.tflite"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeshop-demo", description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="folder with train/ and test/ class folders")
    p.add_argument("--out", default="runs/demo", help="run directory (models are written inside)")
    p.add_argument("--image-size", type=int, default=160, help="input side in pixels (default 160)")
    p.add_argument("--epochs", type=int, default=6, help="epochs of the main training phase (default 6)")
    p.add_argument("--threads", type=positive_int, default=2, help="interpreter threads for the latency figures")
    p.add_argument("--no-deterministic", dest="deterministic", action="store_false",
                   help="TensorFlow's default (faster, not bit-reproducible) kernels")
    p.add_argument("--json", help="write the printed figures here too (default OUT/demo_figures.json)")
    p.add_argument("--force", action="store_true", help="replace a previous demo run in --out (and --json); "
                   "only an edgeshop run folder is replaced")
    p.add_argument("--show-data", action="store_true",
                   help="print the folder of the bundled demo photos (train/ and test/ class folders) and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse(build_parser(), argv)
    if args.show_data:
        print(DEFAULT_DATA)
        return 0

    def body() -> int:
        from edgeshop._io import check_output_folder, check_outputs, write_json_atomic

        # refused before TensorFlow is imported (train() checks the folder again)
        check_output_folder(args.out, force=args.force, inputs=[args.data])
        check_outputs([(args.json, "json", "--json")], force=args.force, inputs=[args.data])
        from edgeshop.data import discover

        discover(Path(args.data) / "train")
        discover(Path(args.data) / "test")
        from edgeshop.report.evaluate import predict
        from edgeshop.report.metrics import top_k_accuracy
        from edgeshop.runtime.bench import machine_info, time_calls
        from edgeshop.runtime.classifier import Classifier
        from edgeshop.runtime.preprocess import read_image
        from edgeshop.train.config import TrainConfig
        from edgeshop.train.exporter import export
        from edgeshop.train.fit import train
        from edgeshop.train.run_dir import RunDir

        started = time.time()
        data, out = Path(args.data), Path(args.out)
        config = TrainConfig.from_flat(
            data=str(data / "train"), out=str(out), val_fraction=0.2, arch="efficientnet_lite0",
            image_size=args.image_size, epochs=args.epochs, head_epochs=2, batch_size=16,
            prune=0.5, prune_epochs=2, qat=True, qat_epochs=2, seed=0,
            deterministic=args.deterministic,  # default: the same figures every time on one machine
        )
        print(f"== 1/3 train + prune 50% + int8 QAT on {config.data.path} ({args.image_size}px)")
        metrics = train(config, force=args.force)
        trained = time.time() - started
        print("== 2/3 export float32 and int8 .tflite")
        paths = {}
        for fmt in ("float32", "int8"):
            paths[fmt] = out / f"model_{fmt}.tflite"
            report = export(out, paths[fmt], fmt, force=True)
            print(f"   {paths[fmt]}: {report['method']}, fully integer: {report['audit']['fully_integer']}")
        print(f"== 3/3 classify the held-out images in {data / 'test'}")
        samples = discover(data / "test")
        frame = read_image(samples[0].path)
        rows = []
        for fmt, path in paths.items():
            classifier = Classifier(path, threads=args.threads)
            result = predict(classifier, samples)
            latency = time_calls(lambda c=classifier: c.classify(frame), runs=50, warmup=5)
            rows.append((fmt, top_k_accuracy(result.truth, result.scores, 1), path.stat().st_size, latency.p50_ms))
        example = Classifier(paths["int8"]).classify(frame, top_k=3)
        print(f"\nint8 Classifier on {samples[0].path.name} (true: {samples[0].label}):")
        for p in example:
            print(f"   {p.label:20s} {p.score:.3f}")
        print(f"\n{len(samples)} held-out images, latency = median of 50 Classifier.classify calls "
              f"({args.threads} threads, this machine)\n")
        print("| model   | top-1 | size (MB) | median latency (ms) |")
        print("|---------|-------|-----------|---------------------|")
        for fmt, acc, size, p50 in rows:
            print(f"| {fmt:7s} | {acc:5.1%} | {size / 1e6:9.2f} | {p50:19.2f} |")
        f32, i8 = rows
        print(f"\nint8 / float32: size {i8[2] / f32[2]:.2f}x, latency {i8[3] / f32[3]:.2f}x")
        shipped_top1 = None
        if SHIPPED_MODEL.is_file():
            shipped = predict(Classifier(SHIPPED_MODEL, threads=args.threads), samples, show_progress=False)
            shipped_top1 = top_k_accuracy(shipped.truth, shipped.scores, 1)
            print(f"The shipped 81-class model ({SHIPPED_MODEL.relative_to(REPO)}) on the same images: "
                  f"top-1 {shipped_top1:.1%} (not trained on them, but they "
                  "are part of the val split it was selected on)")
        seconds = time.time() - started
        print(f"total demo time {seconds:.0f} s")
        report = RunDir(out).read_json(RunDir(out).data_report_file)
        figures = {
            "command": shlex.join(["edgeshop-demo", *(sys.argv[1:] if argv is None else argv)]),
            "settings": {"image_size": args.image_size, "epochs": args.epochs, "threads": args.threads,
                         "deterministic": args.deterministic},
            "train_images": report["train_images"], "val_images": report["val_images"], "test_images": len(samples),
            "models": {fmt: {"top1": acc, "size_bytes": size, "classify_p50_ms": p50} for fmt, acc, size, p50 in rows},
            "val_top1_final": metrics.get("val_top1_final"), "shipped_top1": shipped_top1,
            "seconds_train": round(trained, 1), "seconds_total": round(seconds, 1), "machine": machine_info(),
            # other jobs on the machine move the latency and the time; the load says how busy it was
            "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()],
        }
        write_json_atomic(Path(args.json) if args.json else out / "demo_figures.json", figures)
        return 0

    return run_command("edgeshop-demo", body)


if __name__ == "__main__":
    sys.exit(main())
