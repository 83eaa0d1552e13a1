"""Where the shipped grocery model's time goes, and which format is fastest on this CPU (#39).

    python studies/performance/perf_study.py prepare              # derived files into runs/perf (TensorFlow)
    python studies/performance/perf_study.py accuracy             # top-1 of every variant on grocery val
    python studies/performance/perf_study.py levers --threads 1   # every variant interleaved, one process
    python studies/performance/perf_study.py blocks --threads 1   # time of graph prefixes cut after each block
    python studies/performance/perf_study.py classify --threads 1 # classify(640x480) / bare invoke
    python studies/performance/perf_study.py compiled --threads 1 # LiteRT's CompiledModel API vs the Interpreter
    (--clock cpu: CPU time of the calling thread, for 1 thread on a loaded machine)

Every ratio compares calls interleaved in one process (edgeshop.runtime.bench.time_interleaved);
figures go to studies/performance/figures/<command>_<cpu class>[_<threads>t].json, named by the
CPU class they were measured on (edgeshop.runtime.cpu_class) so figures of two classes never mix.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

STUDY = Path(__file__).resolve().parent
ROOT = STUDY.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

from edgeshop import (  # noqa: E402
    detect_cpu_class,
    machine_info,
    time_interleaved,
    write_json_atomic,
)

SHIPPED = ROOT / "models" / "grocery"
GROCERY = ROOT.parent / "shared" / "datasets" / "grocery_store"
WORK = ROOT / "runs" / "perf"
FIGURES = STUDY / "figures"
INPUT_SIZES = (256, 224)  # the shipped int8 network run at smaller inputs (fully convolutional + MEAN)

# name -> (file in WORK or SHIPPED, how it was made)
VARIANTS = {
    "float32": ("float32.tflite", "grocery_fp16.tflite with float32 weights (tflite_rewrite.float16_to_float32)"),
    "float16": ("grocery_fp16.tflite", "shipped: float16 weights + DEQUANTIZE"),
    "int8": ("grocery_int8.tflite", "shipped: QAT, full int8, per-channel weights"),
    "int8_fast": ("grocery_int8_fast.tflite", "shipped: channel-pruned (74% of channels), 256x256, full int8"),
    "dynamic": ("dynamic.tflite", "float32 + int8 per-channel conv/FC weights (tflite_rewrite.dynamic_range_weights)"),
    "dynamic_per_tensor": ("dynamic_per_tensor.tflite", "the same, one scale per kernel"),
    "dynamic_tf": ("dynamic_tf.tflite", "TF converter's dynamic range on the same network (depthwise int8 too)"),
    **{f"int8_{size}": (f"int8_{size}.tflite", f"the shipped int8 network with a {size}x{size} input")
       for size in INPUT_SIZES},
}


def path_of(name: str) -> Path:
    file = VARIANTS[name][0]
    return SHIPPED / file if (SHIPPED / file).is_file() else WORK / file


# -- prepare -------------------------------------------------------------------------------
def prepare() -> None:
    from edgeshop import Classifier, preprocess, read_image
    from edgeshop.report import quantize_static_int8, tflite_to_onnx
    from edgeshop.train import dynamic_range_weights, float16_to_float32, with_input_size

    WORK.mkdir(parents=True, exist_ok=True)
    float32 = float16_to_float32((SHIPPED / "grocery_fp16.tflite").read_bytes())
    (WORK / "float32.tflite").write_bytes(float32)
    (WORK / "dynamic.tflite").write_bytes(dynamic_range_weights(float32))
    (WORK / "dynamic_per_tensor.tflite").write_bytes(dynamic_range_weights(float32, per_channel=False))
    (WORK / "dynamic_tf.tflite").write_bytes(_tf_dynamic_range_copy(float32))
    int8 = (SHIPPED / "grocery_int8.tflite").read_bytes()
    for size in INPUT_SIZES:
        (WORK / f"int8_{size}.tflite").write_bytes(with_input_size(int8, size))
    tflite_to_onnx(WORK / "float32.tflite", WORK / "float32.onnx")
    from bench_suite import calibration_samples  # tools/: make bench's choice of ORT calibration photos

    spec = Classifier(SHIPPED / "grocery_int8.tflite").input_spec
    chosen = calibration_samples(None)
    pixels = np.stack([preprocess(read_image(s.path), spec) for s in chosen]).astype(np.float32)
    quantize_static_int8(WORK / "float32.onnx", WORK / "onnx_int8.onnx", pixels)
    quantize_static_int8(WORK / "float32.onnx", WORK / "onnx_int8_reduce_range.onnx", pixels, reduce_range=True)


def _tf_dynamic_range_copy(float32: bytes) -> bytes:
    """What `tf.lite.Optimize.DEFAULT` writes for this network, without its training run: the
    TF converter's own scheme applied to depthwise kernels as well (per-channel, axis 3)."""
    from edgeshop.train import dynamic_range_weights

    return dynamic_range_weights(float32, depthwise=True)


def _samples(split: str):
    from edgeshop.data import discover

    return discover(GROCERY / f"{split}.txt", GROCERY / "classes.csv")


# -- accuracy ------------------------------------------------------------------------------
def accuracy() -> dict:
    from edgeshop import Classifier, preprocess, read_image
    from edgeshop.report import OnnxModel, top_k_accuracy

    samples = _samples("val")
    images = [read_image(s.path) for s in samples]
    result: dict = {"images": len(samples), "data": "grocery_store/val.txt", "top1": {}, "agreement_with_int8": {}}
    predictions = {}
    for name in VARIANTS:
        classifier = Classifier(path_of(name), threads=2)
        labels = classifier.labels
        truth = np.array([labels.index(s.label) for s in samples])
        scores = np.stack([classifier.scores_from_pixels(preprocess(image, classifier.input_spec)) for image in images])
        result["top1"][name] = top_k_accuracy(truth, scores, 1)
        predictions[name] = scores.argmax(1)
    spec = Classifier(path_of("int8")).input_spec
    pixels = [preprocess(image, spec) for image in images]
    for name in ("float32", "onnx_int8", "onnx_int8_reduce_range"):
        model = OnnxModel(WORK / f"{name}.onnx", 2)
        scores = np.stack([model.scores(p) for p in pixels])
        result["top1"][f"onnx_{name}" if name == "float32" else name] = top_k_accuracy(truth, scores, 1)
        predictions[f"onnx_{name}" if name == "float32" else name] = scores.argmax(1)
    for name, predicted in predictions.items():
        result["agreement_with_int8"][name] = float(np.mean(predicted == predictions["int8"]))
    return result


# -- latency -------------------------------------------------------------------------------
def interpreter(content: bytes, threads: int, **options):
    from edgeshop import interpreter_class

    cls = interpreter_class("litert")[1]
    it = cls(model_content=content, num_threads=threads, **options)
    it.allocate_tensors()
    return it


def levers(threads: int, runs: int, clock) -> dict:
    from ai_edge_litert.interpreter import OpResolverType

    from edgeshop import invoke_callable
    from edgeshop.report import OnnxModel

    calls = {name: invoke_callable(interpreter(path_of(name).read_bytes(), threads)) for name in VARIANTS}
    int8 = path_of("int8").read_bytes()
    calls["int8_latest_features"] = invoke_callable(
        interpreter(int8, threads, experimental_default_delegate_latest_features=True))
    calls["dynamic_latest_features"] = invoke_callable(
        interpreter(path_of("dynamic").read_bytes(), threads, experimental_default_delegate_latest_features=True))
    calls["int8_no_xnnpack"] = invoke_callable(
        interpreter(int8, threads, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    pixels = np.random.default_rng(0).uniform(0, 255, (288, 288, 3)).astype(np.float32)
    for name in ("float32", "onnx_int8", "onnx_int8_reduce_range"):
        key = "onnx_float32" if name == "float32" else name
        calls[key] = OnnxModel(WORK / f"{name}.onnx", threads, spinning=False).invoke_callable(pixels)
    block = 1 if threads == 1 else 10
    stats = time_interleaved(calls, runs=runs, warmup=5, block=block, clock=clock)
    return {name: s.to_dict() for name, s in stats.items()}


def blocks(threads: int, runs: int, clock) -> dict:
    """Time of the int8 and float32 graphs cut after each MBConv block (prefixes), interleaved:
    the difference of two consecutive prefixes is what the block between them costs."""
    from edgeshop import invoke_callable
    from edgeshop.train import block_ends, cut_after

    result = {}
    for name in ("int8", "float32"):
        content = path_of(name).read_bytes()
        ends = block_ends(content)
        calls = {f"{name}@{index}": invoke_callable(interpreter(cut_after(content, index), threads))
                 for index in ends}
        calls[f"{name}@full"] = invoke_callable(interpreter(content, threads))
        stats = time_interleaved(calls, runs=runs, warmup=3, block=1 if threads == 1 else 10, clock=clock)
        p50 = {k: s.p50_ms for k, s in stats.items()}
        result[name] = {"ends": ends, "p50_ms": p50, "stages_ms": stages(content, ends, p50, name)}
    return result


def stages(content: bytes, ends: list[int], p50: dict[str, float], name: str) -> dict[str, float]:
    """Cost of each resolution stage (prefix time at the stage's last cut minus the previous
    stage's): single ops are too short to time apart on a shared machine, stages are not."""
    from edgeshop import plain_interpreter

    it = plain_interpreter(content)
    ops = it._get_ops_details()  # noqa: SLF001
    shapes = {t["index"]: t["shape"] for t in it.get_tensor_details()}
    last_of_stage: dict[str, int] = {}
    for index in ends:
        shape = shapes[ops[index]["outputs"][0]]
        if len(shape) != 4:  # pooled: the tail
            continue
        stage = f"{shape[1]}x{shape[2]}"
        if ops[index]["op_name"] in ("QUANTIZE", "MUL", "ADD") and index < 3:
            stage = "input (quantize, normalise)"
        last_of_stage[stage] = index
    result, before = {}, 0.0
    for stage, index in last_of_stage.items():
        result[stage] = p50[f"{name}@{index}"] - before
        before = p50[f"{name}@{index}"]
    result["tail (pool, dense, softmax, quantize)"] = p50[f"{name}@full"] - before
    return result


def classify_overhead(threads: int, runs: int, clock) -> dict:
    """Classifier.classify on a 640x480 frame against the bare invoke of its own interpreter,
    the two alternating (tools/bench_suite.py's pair), for the shipped int8 file."""
    from edgeshop import Classifier, invoke_callable

    classifier = Classifier(path_of("int8"), threads=threads)
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    pair = time_interleaved({"invoke": invoke_callable(classifier._interpreter),  # noqa: SLF001
                             "classify": lambda: classifier.classify(frame, top_k=5)},
                            runs=runs, warmup=5, block=1 if threads == 1 else 10, clock=clock)
    return {name: s.to_dict() for name, s in pair.items()}


def compiled(threads: int, runs: int, clock) -> dict:
    """LiteRT 2.x's CompiledModel API (CpuOptions: threads, YNNPACK) against the Interpreter
    edgeshop runs, same files, interleaved; a configuration the build refuses is recorded as such."""
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.cpu_options import CpuOptions
    from ai_edge_litert.options import Options

    from edgeshop import invoke_callable

    calls, refused = {}, {}
    for name in ("int8", "float32", "dynamic"):
        content = path_of(name).read_bytes()
        calls[f"{name}_interpreter"] = invoke_callable(interpreter(content, threads))
        for ynnpack in (False, True):
            key = f"{name}_compiled" + ("_ynnpack" if ynnpack else "")
            try:
                model = CompiledModel.from_buffer(content, options=Options(
                    cpu_options=CpuOptions(num_threads=threads, enable_ynnpack=ynnpack)))
            except Exception as exc:  # noqa: BLE001 - LiteRT raises bare RuntimeErrors with native text
                refused[key] = str(exc).splitlines()[0]
                continue
            inputs, outputs = model.create_input_buffers(0), model.create_output_buffers(0)
            calls[key] = lambda m=model, i=inputs, o=outputs: m.run_by_index(0, i, o)
    stats = time_interleaved(calls, runs=runs, warmup=3, block=1 if threads == 1 else 10, clock=clock)
    return {"latency": {name: s.to_dict() for name, s in stats.items()}, "refused": refused}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("prepare", "accuracy", "levers", "blocks", "classify", "compiled"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: time.thread_time, the calling thread's CPU time, which leaves out the time a "
                        "loaded machine deschedules it (valid at 1 thread only: every kernel runs on that thread)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.time()
    if args.command == "prepare":
        prepare()
        return 0
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu measures one thread's CPU time: use it with --threads 1")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    cpu = detect_cpu_class()
    name = f"{args.command}_{cpu}.json" if args.command == "accuracy" else \
        f"{args.command}_{cpu}_{args.threads}t_{args.clock}.json"
    if args.command == "accuracy":
        figures = accuracy()
    else:
        measures = {"levers": levers, "classify": classify_overhead, "blocks": blocks, "compiled": compiled}
        measure = measures[args.command]
        figures = measure(args.threads, args.runs, clock)
    record = {"command": "python studies/performance/perf_study.py " + " ".join(sys.argv[1:]),
              "cpu_class": cpu, "machine": machine_info(), "threads": args.threads, "runs": args.runs,
              "clock": args.clock, "load_average": os.getloadavg(),
              "seconds": round(time.time() - started, 1), "figures": figures}
    write_json_atomic(FIGURES / name, record)
    print(json.dumps(record, indent=1)[:3000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
