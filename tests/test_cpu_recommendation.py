"""#39: the CPU class of a machine, edgeshop-bench's recommendation and edgeshop-export --for."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edgeshop.runtime.cpu_class import RECOMMENDED, detect_cpu_class

DATA = Path(__file__).parent / "data"

# /proc/cpuinfo as each kind of machine writes it (first core only, the lines that matter).
AVX2_EPYC = ("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B12\n"
             "flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2\n")
ZEN4 = ("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse sse2 avx avx2 avx512f avx512dq avx512bw "
        "avx512vl avx512_bf16 avx512vbmi avx512_vnni avx512_bitalg\n")
ALDER_LAKE = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma avx_vnni\n"
SKYLAKE_X = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl\n"
PI4 = ("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
       "CPU implementer\t: 0x41\nCPU part\t: 0xd08\n")
PI5 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm " \
      "lrcpc dcpop asimddp\nCPU part\t: 0xd0b\n"


@pytest.mark.parametrize(("cpuinfo", "machine", "expected"), [
    (AVX2_EPYC, "x86_64", "cpu-avx2"),
    (ZEN4, "x86_64", "cpu-vnni"),
    (ALDER_LAKE, "x86_64", "cpu-vnni"),
    (SKYLAKE_X, "x86_64", "cpu-avx512"),
    ("processor\t: 0\nflags\t\t: fpu sse sse2 sse4_2 avx\n", "x86_64", "cpu-x86"),
    (PI4, "aarch64", "arm64"),
    (PI5, "aarch64", "arm64-dot"),
    ("", "riscv64", "other"),
])
def test_cpu_class_from_cpuinfo(cpuinfo: str, machine: str, expected: str) -> None:
    assert detect_cpu_class(cpuinfo, machine) == expected


def test_every_cpu_class_has_a_recommendation() -> None:
    from edgeshop.runtime.cpu_class import CPU_CLASSES
    from edgeshop.train.convert import FORMATS

    assert set(RECOMMENDED) == set(CPU_CLASSES)
    assert all(r.format in FORMATS for r in RECOMMENDED.values())


def _with_size_and_top1(tmp_path: Path, name: str, size: int, top1: float | None) -> Path:
    """The committed tiny int8 model at a ``size`` x ``size`` input (bigger: slower), its card
    recording ``top1`` as validation accuracy (None: no figure)."""
    from edgeshop.tflite.modelcard import embed_card, read_card
    from edgeshop.train.tflite_rewrite import with_input_size

    content = with_input_size((DATA / "tiny_int8.tflite").read_bytes(), size)
    card = read_card(content)
    extra = {k: v for k, v in card.extra.items() if k != "validation"}
    if top1 is not None:
        extra["validation"] = {"val_top1_final": top1}
    path = tmp_path / name
    path.write_bytes(embed_card(content, replace(card, extra=extra)))
    return path


@pytest.mark.parametrize(("small_top1", "big_top1", "expected"), [
    (0.800, 0.803, "small.tflite"),  # equal accuracy (within 0.5 point): the faster one
    (0.800, 0.810, "big.tflite"),  # the faster one is 1 point worse: not equal, the accurate one
    (None, 0.700, "big.tflite"),  # unknown accuracy does not compete with a known one
])
def test_bench_recommends_the_fastest_at_equal_accuracy(tmp_path: Path, small_top1, big_top1, expected) -> None:
    from edgeshop.report.format_choice import compare_models

    small = _with_size_and_top1(tmp_path, "small.tflite", 32, small_top1)
    big = _with_size_and_top1(tmp_path, "big.tflite", 192, big_top1)  # 36x the pixels
    comparison = compare_models([big, small], [1], runs=15, warmup=2)
    rows = {Path(row["model"]).name: row for row in comparison["rows"]}
    assert rows["small.tflite"]["p50_ms"]["1"] < rows["big.tflite"]["p50_ms"]["1"]  # timed, really
    assert Path(comparison["recommendation"]["model"]).name == expected
    if small_top1 is None:
        assert [Path(m).name for m in comparison["recommendation"]["excluded_unknown_accuracy"]] == ["small.tflite"]


def test_bench_cli_prints_a_table_and_one_recommendation_line(tmp_path: Path, capsys) -> None:
    from edgeshop.cli.bench import main

    folder = tmp_path / "exports"
    folder.mkdir()
    _with_size_and_top1(folder, "a.tflite", 32, 0.9)
    _with_size_and_top1(folder, "b.tflite", 96, 0.9)
    assert main([str(folder), "--runs", "10", "--warmup", "1", "--threads", "1,2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["model", "top-1", "MB"]
    assert [line.split()[0] for line in out[1:3]] == ["a.tflite", "b.tflite"]
    recommendation = [line for line in out if line.startswith("Recommendation")]
    assert len(recommendation) == 1
    assert f"this {detect_cpu_class()} machine" in recommendation[0] and ": a.tflite, the fastest" in recommendation[0]


def _xnnpack_partitions(content: bytes) -> int:
    from edgeshop.runtime.backend import make_interpreter

    interpreter = make_interpreter(content, 1)[1]
    return sum(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())  # noqa: SLF001


@pytest.mark.parametrize("target", ["cpu-avx2", "cpu-vnni", "auto"])
def test_export_for_writes_the_class_format(pipeline, tmp_path: Path, target: str, capsys) -> None:
    from edgeshop.cli.export import main
    from edgeshop.runtime.audit import audit_model
    from edgeshop.runtime.classifier import Classifier
    from edgeshop.runtime.cpu_class import recommended_format

    out = tmp_path / f"{target}.tflite"
    assert main([str(pipeline["run"]), "--for", target, "--out", str(out), "--no-calibrate"]) == 0
    expected = recommended_format(target)[1].format
    classifier = Classifier(out)  # loads, with its card
    assert classifier.card.quantization in (expected, f"qat_{expected}", f"ptq_{expected}")
    audit = audit_model(out.read_bytes())
    if expected == "int8":
        assert audit["fully_integer"]
    elif expected == "float16":
        assert audit["op_counts"].get("DEQUANTIZE", 0) > 0 and audit["input"]["dtype"] == "float32"
    assert _xnnpack_partitions(out.read_bytes()) == 1
    assert f"--for {target}:" in capsys.readouterr().out


def test_dynamic_range_export_runs_in_one_xnnpack_partition(pipeline, tmp_path: Path) -> None:
    """int8 conv/dense weights with float activations: XNNPACK's dynamically quantized kernels run
    the whole graph (the converter's int8 depthwise kernels would split it per block)."""
    import numpy as np

    from edgeshop.runtime.classifier import Classifier
    from edgeshop.train.exporter import export

    out = tmp_path / "dynamic.tflite"
    export(pipeline["run"], out, "dynamic", calibrate=False)
    content = out.read_bytes()
    assert _xnnpack_partitions(content) == 1
    dynamic, reference = Classifier(out), Classifier(pipeline["float32"])
    spec = reference.input_spec
    pixels = np.random.default_rng(0).integers(0, 256, (8, spec.height, spec.width, 3), dtype=np.uint8)
    kernels = [t for t in dynamic._interpreter.get_tensor_details() if t["dtype"] == np.int8]  # noqa: SLF001
    assert kernels and all(len(t["quantization_parameters"]["scales"]) >= 1 for t in kernels)
    diff = max(np.abs(dynamic.scores_from_pixels(p) - reference.scores_from_pixels(p)).max() for p in pixels)
    assert 0 < diff < 0.05  # int8 weights: close to, not equal to, the float model


def test_bench_refuses_a_missing_model_or_an_empty_folder(tmp_path: Path, capsys) -> None:
    from edgeshop.cli.bench import main

    missing = tmp_path / "nope.tflite"
    assert main([str(DATA / "tiny_int8.tflite"), str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"edgeshop-bench: error: {missing}: no such model file or folder"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty)]) == 2
    assert "no .tflite file in this folder" in capsys.readouterr().err


def _float32_with_depthwise() -> bytes:
    """A small float32 .tflite with kernels big enough to be quantized (>= 1024 values each):
    conv 3x3x3->64, depthwise 3x3 on 128 channels, 1x1 conv 128->64, dense 64->10."""
    from edgeshop.train._keras import keras, tf

    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(128, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(64, 1, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Dense(64)(x)))
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def test_dynamic_range_weights_keep_depthwise_float_for_one_xnnpack_partition() -> None:
    import numpy as np

    from edgeshop.runtime.backend import make_interpreter, plain_interpreter
    from edgeshop.train.tflite_rewrite import dynamic_range_weights

    float32 = _float32_with_depthwise()
    dynamic = dynamic_range_weights(float32)
    assert _xnnpack_partitions(dynamic) == 1
    # the converter's scheme (depthwise int8 too) leaves the depthwise conv to LiteRT's hybrid kernel
    assert _xnnpack_partitions(dynamic_range_weights(float32, depthwise=True)) > 1

    interpreter = plain_interpreter(dynamic)
    ops = {}  # the first op of each type: the 64->64 dense is quantized, the 64->10 one is under 1024 values
    for op in interpreter._get_ops_details():  # noqa: SLF001
        ops.setdefault(op["op_name"], op)
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    assert details[ops["DEPTHWISE_CONV_2D"]["inputs"][1]]["dtype"] == np.float32
    for name in ("CONV_2D", "FULLY_CONNECTED"):
        kernel = details[ops[name]["inputs"][1]]
        assert kernel["dtype"] == np.int8 and len(kernel["quantization_parameters"]["scales"]) == kernel["shape"][0]

    rng = np.random.default_rng(0)
    scores = []
    for content in (float32, dynamic):
        it = make_interpreter(content, 1)[1]
        batch = rng.uniform(-1, 1, (1, 24, 24, 3)).astype(np.float32)
        rng = np.random.default_rng(0)  # the same input for both
        it.set_tensor(it.get_input_details()[0]["index"], batch)
        it.invoke()
        scores.append(it.get_tensor(it.get_output_details()[0]["index"]))
    assert 0 < np.abs(scores[0] - scores[1]).max() < 0.02  # int8 weights: close to float, not equal
