"""`make bench`: the shipped grocery model against its float32 self, ONNX Runtime and Keras.

    python tools/bench_suite.py                    # threads 1 and 2, writes bench/results.json + README table
    python tools/bench_suite.py --threads 1 --runs 50 --no-readme     # a quick look

What is measured (per thread count, in one child process, calls interleaved round-robin
so that every ratio compares calls made under the same conditions):
- bare LiteRT invoke of the int8, float16 and float32 models;
- `Classifier.classify` end to end on a 640x480 BGR frame (resize, colour, invoke, top-k),
  against the bare invoke of its own interpreter in a session of those two calls alone;
- the same network in ONNX Runtime, float32 and static int8 (edgeshop/report/onnx_baseline);
- Keras `predict` and a direct Keras call of the same architecture (the original design);
- a 50%-magnitude-pruned copy of the int8 and float32 files (size after gzip, latency);
- camera loop: decode + classify every frame of a 640x480 MJPEG video, frames per second.
Accuracy of each exported variant is measured once on --data (grocery val if present).

The float32 model is rebuilt from the shipped float16 file (same weights); the Keras
model is built from the card (architecture, input size, classes) with random weights:
weights do not change the time of a dense network. Threads are fixed per
process because TensorFlow fixes its thread pools at start-up, hence one child each.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from readme_block import replace_block  # noqa: E402  (tools/ is on sys.path when run as a script)

from edgeshop import (  # noqa: E402
    DEMO_DATA,
    Classifier,
    machine_info,
    preprocess,
    read_image,
    write_json_atomic,
)
from edgeshop.data import discover  # noqa: E402
from edgeshop.tflite import embed_card  # noqa: E402

GROCERY_VAL = ROOT.parent / "shared" / "datasets" / "grocery_store" / "val"
GROCERY_TRAIN = GROCERY_VAL.parent / "train.txt"
ONNX_CALIBRATION_IMAGES = 200
DEMO_TEST = DEMO_DATA / "test"
FRAME_SIZE = (640, 480)
VIDEO_FRAMES = 300
PRUNE_SPARSITY = 0.5
BLOCK = 10  # calls in a row per runtime when timing with several threads
SPARSE_PROBE = 0.75  # XNNPACK's sparse path needs >= 2/3 zeros in the 1x1 convolutions
MODEL_LABELS = {
    "int8": "edgeshop int8 (shipped)",
    "int8_linear": "the same file with the other resize rule (trained with the shipped one)",
    "float16": "float16 (shipped reference)",
    "float32": "float32 (rebuilt from float16)",
    "onnx_int8": "ONNX Runtime static int8",
    "onnx_float32": "ONNX Runtime float32",
    "int8_pruned": "int8, 50% one-shot pruned (runtime probe, not a model to use)",
    "float32_pruned": "float32, 50% one-shot pruned (runtime probe)",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--int8", default=str(ROOT / "models" / "grocery" / "grocery_int8.tflite"))
    parser.add_argument("--float16", default=str(ROOT / "models" / "grocery" / "grocery_fp16.tflite"))
    parser.add_argument("--data", help="labelled images for accuracy (default: grocery val if present, else "
                        "edgeshop/demo_data/test)")
    parser.add_argument("--calibration", default=None,
                        help="images for ONNX Runtime's static int8 calibration (default: 200 grocery train photos, "
                        "seeded, when the dataset is present, as edgeshop's int8 was calibrated on grocery train; "
                        "else edgeshop/demo_data/train)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=200, help="timed runs per call (Keras: a fifth)")
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench"), help="scratch folder for derived models")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the README's bench table")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # internal: measure at N threads
    args = parser.parse_args()

    work = Path(args.work)
    if args.child:
        print(json.dumps(measure(work, args.child, args.runs)))
        return 0

    started = time.time()
    print("preparing float32, pruned, ONNX and video files ...", flush=True)
    files = prepare(Path(args.int8), Path(args.float16), calibration_samples(args.calibration), work)
    data = Path(args.data) if args.data else (GROCERY_VAL if GROCERY_VAL.is_dir() else DEMO_TEST)
    print(f"accuracy on {data} ...", flush=True)
    results = {"machine": machine_info(), "versions": versions(), "data": str(data), "runs": args.runs,
               "files": {name: file_sizes(path) for name, path in files.items() if path.suffix != ".avi"},
               "accuracy": accuracy(files, data), "threads": {},
               "resize_rules": {"shipped": Classifier(files["int8"]).input_spec.interpolation,
                                "other": Classifier(files["int8_linear"]).input_spec.interpolation}}
    for threads in args.threads:
        print(f"timing with {threads} thread(s) ...", flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(threads), "--work", str(work), "--runs", str(args.runs)],
            check=True, capture_output=True, text=True,
        )
        results["threads"][str(threads)] = json.loads(child.stdout.strip().splitlines()[-1])
    results["seconds"] = round(time.time() - started, 1)
    write_json_atomic(Path(args.json), results)
    table = render_table(results)
    print(table)
    if not args.no_readme:
        replace_block("bench", table)
    print(f"wrote {args.json}" + ("" if args.no_readme else " and the README's bench table"))
    return 0


# -- preparation (parent) ------------------------------------------------------------
def calibration_samples(given: str | None) -> list:
    """ONNX Runtime's calibration images: ``given``, else 200 seeded grocery train photos (the data
    edgeshop's int8 model was calibrated on; the 50-photo demo subset cost ORT int8 10 points of
    top-1, studies/performance), else the demo subset."""
    if given:
        return discover(given)
    if GROCERY_TRAIN.is_file():
        samples = discover(GROCERY_TRAIN, GROCERY_TRAIN.parent / "classes.csv")
        chosen = np.random.default_rng(0).choice(len(samples), min(ONNX_CALIBRATION_IMAGES, len(samples)),
                                                 replace=False)
        return [samples[i] for i in chosen]
    return discover(DEMO_DATA / "train")


def prepare(int8: Path, float16: Path, calibration: list, work: Path) -> dict[str, Path]:
    from edgeshop.report import quantize_static_int8, tflite_to_onnx
    from edgeshop.train import float16_to_float32, magnitude_prune

    work.mkdir(parents=True, exist_ok=True)
    files = {"int8": int8, "float16": float16, "float32": work / "float32.tflite",
             "int8_pruned": work / "int8_pruned50.tflite", "float32_pruned": work / "float32_pruned50.tflite",
             "onnx_float32": work / "float32.onnx", "onnx_int8": work / "int8_static.onnx",
             "video": work / "shelf_640x480.avi"}
    files["float32"].write_bytes(float16_to_float32(float16.read_bytes()))
    files["int8_linear"] = work / "int8_linear_rule.tflite"  # same network, the card's other resize rule
    card = Classifier(int8).card
    rule = "linear" if card.input.interpolation == "area" else "area"
    files["int8_linear"].write_bytes(
        embed_card(int8.read_bytes(), replace(card, input=replace(card.input, interpolation=rule))))
    files["int8_pruned"].write_bytes(magnitude_prune(int8.read_bytes(), PRUNE_SPARSITY))
    files["float32_pruned"].write_bytes(magnitude_prune(files["float32"].read_bytes(), PRUNE_SPARSITY))
    tflite_to_onnx(files["float32"], files["onnx_float32"])
    spec = Classifier(int8).input_spec
    pixels = np.stack([preprocess(read_image(s.path), spec) for s in calibration]).astype(np.float32)
    quantize_static_int8(files["onnx_float32"], files["onnx_int8"], pixels)
    write_video(files["video"], [s.path for s in discover(DEMO_TEST)])
    files["float32_dense_probe"], files["float32_sparse_probe"] = sparse_inference_probe(Classifier(int8).card, work)
    write_json_atomic(work / "files.json", {name: str(path.resolve()) for name, path in files.items()})
    return files


def sparse_inference_probe(card, work: Path) -> tuple[Path, Path]:
    """The network with 75% of every 1x1 conv zeroed (random weights), converted twice:
    dense, and with tf.lite.Optimize.EXPERIMENTAL_SPARSITY (weights stored sparse, DENSIFY
    ops), the form XNNPACK's sparse inference needs (float only, >= 2/3 zeros in 1x1 convs)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgeshop.train import TrainConfig, build_model, tf

    model = build_model(TrainConfig.from_flat(data="-", out="-", arch=card.arch, image_size=card.input.height),
                        len(card.labels))
    for layer in model.layers:
        if type(layer).__name__ == "Conv2D" and layer.kernel_size == (1, 1):
            kernel, *rest = layer.get_weights()
            kernel[np.abs(kernel) <= np.quantile(np.abs(kernel), SPARSE_PROBE)] = 0
            layer.set_weights([kernel, *rest])
    paths = work / "float32_dense_probe.tflite", work / "float32_sparse_probe.tflite"
    for path, optimizations in zip(paths, ([], [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]), strict=True):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = optimizations
        path.write_bytes(converter.convert())
    return paths


def write_video(path: Path, images: list[Path]) -> None:
    """A 640x480 MJPEG clip panning slowly over shelf photos (what a shelf camera records)."""
    import cv2

    width, height = FRAME_SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (width, height))
    per_image = max(1, VIDEO_FRAMES // len(images))
    for index in range(VIDEO_FRAMES):
        photo = read_image(images[(index // per_image) % len(images)])
        big = cv2.resize(photo, (width + 64, height + 64), interpolation=cv2.INTER_LINEAR)
        shift = index % per_image * 64 // per_image
        writer.write(np.ascontiguousarray(big[shift : shift + height, shift : shift + width]))
    writer.release()


def file_sizes(path: Path) -> dict[str, int]:
    content = path.read_bytes()
    return {"bytes": len(content), "gzip_bytes": len(gzip.compress(content, compresslevel=9))}


def accuracy(files: dict[str, Path], data: Path) -> dict[str, float]:
    from edgeshop.report import OnnxModel, top_k_accuracy

    reference = Classifier(files["int8"])
    samples = discover(data)
    labels = reference.labels
    samples = [s for s in samples if s.label in labels]
    images = [read_image(s.path) for s in samples]
    pixels = [preprocess(image, reference.input_spec) for image in images]
    truth = np.array([labels.index(s.label) for s in samples])
    models = {name: Classifier(files[name]).scores_from_pixels
              for name in ("int8", "float16", "float32", "int8_pruned", "float32_pruned")}
    models["onnx_float32"] = OnnxModel(files["onnx_float32"], 2).scores
    models["onnx_int8"] = OnnxModel(files["onnx_int8"], 2).scores
    result = {"images": len(samples)}
    for name, scores in models.items():
        result[name] = top_k_accuracy(truth, np.stack([scores(p) for p in pixels]), 1)
    other_rule = Classifier(files["int8_linear"])  # the shipped file with the other resize rule
    result["int8_linear"] = top_k_accuracy(truth, np.stack([other_rule.scores(image) for image in images]), 1)
    return result


# -- measurement (child, one thread count) ---------------------------------------------
def measure(work: Path, threads: int, runs: int) -> dict:
    from edgeshop import invoke_callable, make_interpreter, time_interleaved

    files = {name: Path(path) for name, path in json.loads((work / "files.json").read_text()).items()}
    classifiers = {name: Classifier(files[name], threads=threads)
                   for name in ("int8", "float16", "float32", "int8_pruned", "float32_pruned")}

    int8 = classifiers["int8"]
    frame = _first_video_frame(files["video"])
    pixels = preprocess(frame, int8.input_spec).astype(np.float32)

    from edgeshop.report import OnnxModel

    calls = {f"litert_{name}": invoke_callable(c._interpreter) for name, c in classifiers.items()}  # noqa: SLF001
    for name in ("float32_dense_probe", "float32_sparse_probe"):  # random weights, no card: bare interpreters
        calls[f"litert_{name}"] = invoke_callable(make_interpreter(files[name].read_bytes(), threads)[1])
    other_rule = Classifier(files["int8_linear"], threads=threads)
    calls["preprocess_640x480"] = lambda: preprocess(frame, int8.input_spec)  # where the end-to-end extra goes
    for name in ("onnx_float32", "onnx_int8"):  # spinning off: idle workers would take the next call's cores
        calls[name] = OnnxModel(files[name], threads, spinning=False).invoke_callable(pixels)
    block = BLOCK if threads > 1 else 1  # several multi-threaded pools in one process: see time_interleaved
    latency = {name: stats.to_dict()
               for name, stats in time_interleaved(calls, runs=runs, warmup=10, block=block).items()}

    # ONNX Runtime's default (spinning workers), int8 session alone: its best case, timed after the rest.
    alone = {"onnx_int8_spinning": OnnxModel(files["onnx_int8"], threads).invoke_callable(pixels)}
    latency.update({name: stats.to_dict() for name, stats in time_interleaved(alone, runs=runs, warmup=10).items()})

    # classify against the bare invoke of its own interpreter, the two alternating with nothing
    # between them: what classify adds, both calls under the same (warm) conditions, as in a camera
    # loop. In the session above every call follows another model, which evicts the caches.
    for suffix, classifier in (("", int8), ("_other_rule", other_rule)):
        pair = time_interleaved({"invoke": invoke_callable(classifier._interpreter),  # noqa: SLF001
                                 "classify": lambda c=classifier: c.classify(frame, top_k=5)},
                                runs=runs, warmup=10, block=block)
        latency[f"pair{suffix}_invoke"] = pair["invoke"].to_dict()
        latency[f"classify_int8{suffix}_640x480"] = pair["classify"].to_dict()

    keras_calls = {"litert_int8": calls["litert_int8"], **_keras_calls(int8, threads, pixels)}
    keras = time_interleaved(keras_calls, runs=max(20, runs // 5), warmup=3, block=min(block, 5))
    latency.update({name: stats.to_dict() for name, stats in keras.items() if name != "litert_int8"})
    latency["litert_int8_with_keras"] = keras["litert_int8"].to_dict()
    return {"latency": latency, "camera_loop": camera_loop(files["video"], files["int8"], threads)}


def _first_video_frame(video: Path) -> np.ndarray:
    import cv2

    capture = cv2.VideoCapture(str(video))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"{video}: cannot read a frame")
    return frame


def _keras_calls(int8: Classifier, threads: int, pixels: np.ndarray) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgeshop.train import TrainConfig, build_model, tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    card = int8.card
    config = TrainConfig.from_flat(data="-", out="-", arch=card.arch, image_size=card.input.height)
    model = build_model(config, len(card.labels))
    batch = pixels[None]
    return {"keras_predict": lambda: model.predict(batch, verbose=0),
            "keras_call": lambda: model(batch, training=False)}


def camera_loop(video: Path, model: Path, threads: int, repeats: int = 3) -> dict[str, float]:
    """Frames per second of decode + classify over every frame of the clip (median of repeats)."""
    from edgeshop import open_source

    classifier = Classifier(model, threads=threads)
    decode, full = [], []
    for _ in range(repeats):
        for timings, work in ((decode, None), (full, classifier)):
            source = open_source(video)
            start, count = time.perf_counter(), 0
            for frame in source:
                if work is not None:
                    work.classify(frame.image, top_k=5)
                count += 1
            timings.append(count / (time.perf_counter() - start))
            source.close()
    return {"frames": count, "decode_fps": float(np.median(decode)), "decode_classify_fps": float(np.median(full))}


# -- report ------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("ai-edge-litert", "onnxruntime", "tensorflow", "tf-keras", "opencv-python-headless", "numpy"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


def render_table(results: dict) -> str:
    m = results["machine"]
    cpu_class = f" (CPU class `{m['cpu_class']}`)" if "cpu_class" in m else ""
    lines = [f"Machine: {m['cpu']}{cpu_class}, {m['cores']} cores, Python {m['python']}; "
             f"ai-edge-litert {results['versions'].get('ai-edge-litert', '?')}, "
             f"onnxruntime {results['versions'].get('onnxruntime', '?')}. "
             f"Median of {results['runs']} runs, interleaved (1 thread: call by call; more: blocks of {BLOCK}) "
             f"(Keras: {max(20, results['runs'] // 5)}). "
             f"Accuracy: top-1 on {results['accuracy']['images']} images of `{_short(results['data'])}`.", ""]
    threads = list(results["threads"])
    header = "| | " + " | ".join(f"{t} thread{'s' if t != '1' else ''}" for t in threads) + " | target |"
    lines += [header, "|---|" + "---|" * (len(threads) + 1)]

    def p50(t: str, name: str) -> float:
        return results["threads"][t]["latency"][name]["p50_ms"]

    def row(label: str, values: list[str], target: str = "") -> None:
        lines.append(f"| {label} | " + " | ".join(values) + f" | {target} |")

    row("int8 invoke (ms)", [f"{p50(t, 'litert_int8'):.2f}" for t in threads])
    def ratio(label: str, numerator: str, denominator: str, target: str = "", digits: int = 2) -> None:
        row(label, [f"{p50(t, numerator) / p50(t, denominator):.{digits}f}x" for t in threads], target)

    rules = results["resize_rules"]
    ratio(f"`Classifier.classify`, 640x480 frame / bare invoke (resize rule `{rules['shipped']}`; the two "
          "alternating)", "classify_int8_640x480", "pair_invoke", "<= 1.10x", 3)
    ratio(f"the same with resize rule `{rules['other']}`", "classify_int8_other_rule_640x480", "pair_other_rule_invoke",
          "<= 1.10x", 3)
    row("of which preprocessing (crop, resize, BGR->RGB; ms)",
        [f"{p50(t, 'preprocess_640x480'):.3f}" for t in threads])
    ratio("int8 / float32 invoke", "litert_int8", "litert_float32", "<= 0.5x")
    ratio("float16 / float32 invoke", "litert_float16", "litert_float32")
    ratio("edgeshop int8 / ONNX Runtime static int8 (interleaved, ORT spinning off)", "litert_int8", "onnx_int8",
          "<= 1x")
    ratio("edgeshop int8 / ONNX Runtime static int8 (ORT default spinning, timed alone after)", "litert_int8",
          "onnx_int8_spinning", "<= 1x")
    ratio("edgeshop int8 / ONNX Runtime float32", "litert_int8", "onnx_float32")
    ratio("edgeshop int8 / Keras `predict`", "litert_int8_with_keras", "keras_predict", digits=3)
    ratio("edgeshop int8 / Keras direct call", "litert_int8_with_keras", "keras_call", digits=3)
    ratio("50%-pruned / dense, int8 invoke", "litert_int8_pruned", "litert_int8")
    ratio("50%-pruned / dense, float32 invoke", "litert_float32_pruned", "litert_float32")
    ratio("XNNPACK sparse probe: 75%-sparse 1x1 convs stored sparse / dense, float32",
          "litert_float32_sparse_probe", "litert_float32_dense_probe")
    row("camera loop: decode + classify (fps)",
        [f"{results['threads'][t]['camera_loop']['decode_classify_fps']:.1f}" for t in threads])
    row("camera loop: decode alone (fps)",
        [f"{results['threads'][t]['camera_loop']['decode_fps']:.1f}" for t in threads])
    lines.append("")
    acc, files = results["accuracy"], results["files"]
    lines += ["| model | top-1 | size | gzip |", "|---|---|---|---|"]
    for name, label in MODEL_LABELS.items():
        lines.append(f"| {label} | {acc[name] * 100:.2f}% | {files[name]['bytes'] / 1e6:.2f} MB "
                     f"| {files[name]['gzip_bytes'] / 1e6:.2f} MB |")
    dense, sparse = files["float32_dense_probe"], files["float32_sparse_probe"]
    lines += ["", f"Sparse-storage probe (random weights, 75% of every 1x1 kernel zero): dense "
              f"{dense['bytes'] / 1e6:.2f} MB, stored sparse {sparse['bytes'] / 1e6:.2f} MB."]
    lines += ["", f"Command: `make bench` ({results['seconds'] / 60:.0f} min); raw figures: `bench/results.json`."]
    return "\n".join(lines)


def _short(path: str) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(ROOT.parent)) if p.is_relative_to(ROOT.parent) else str(p)


if __name__ == "__main__":
    sys.exit(main())
