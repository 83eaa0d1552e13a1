"""The performance tooling (issue 7): file rewrites, the ONNX Runtime baseline, interleaved
timing and `tools/bench_suite.py` end to end, all on the session's tiny real models."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeshop.runtime.audit import audit_model
from edgeshop.runtime.backend import make_interpreter
from edgeshop.runtime.bench import time_interleaved
from edgeshop.runtime.classifier import Classifier
from edgeshop.runtime.preprocess import preprocess, read_image
from edgeshop.tflite.modelcard import split_archive

ROOT = Path(__file__).resolve().parents[1]


def _images(folder: Path, limit: int = 24) -> list[Path]:
    return sorted(folder.rglob("*.png"))[:limit]


def test_float16_to_float32_keeps_weights_graph_and_card(pipeline, synthetic_data, tmp_path):
    from edgeshop.train.tflite_rewrite import float16_to_float32

    float16 = pipeline["float16"]
    target = tmp_path / "float32.tflite"
    target.write_bytes(float16_to_float32(float16.read_bytes()))

    _, interpreter = make_interpreter(target.read_bytes(), 1)
    assert "DEQUANTIZE" not in {op["op_name"] for op in interpreter._get_ops_details()}  # noqa: SLF001
    # weights now 4 bytes each (flatbuffers compared: the card's size does not follow the weights)
    assert len(split_archive(target.read_bytes())[0]) > 1.7 * len(split_archive(float16.read_bytes())[0])
    a, b = Classifier(float16), Classifier(target)
    assert b.labels == a.labels and b.input_spec == a.input_spec  # the card came along
    for path in _images(synthetic_data["test"]):
        image = read_image(path)
        np.testing.assert_allclose(a.scores(image), b.scores(image), atol=1e-5)


@pytest.mark.parametrize("fmt", ["int8", "float32"])
def test_magnitude_prune_zeroes_the_smallest_weights(pipeline, fmt):
    from edgeshop.train.tflite_rewrite import magnitude_prune

    content = pipeline[fmt].read_bytes()
    pruned = magnitude_prune(content, 0.8)  # the fixture is already 50% sparse: go further
    assert audit_model(pruned)["weight_sparsity"] >= 0.78
    assert len(gzip.compress(pruned)) < len(gzip.compress(content))
    assert len(pruned) == pytest.approx(len(content), rel=0.01)  # same storage, only zeros
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_prune(content, 1.0)


def test_onnx_runtime_baseline_matches_tflite(pipeline, synthetic_data, tmp_path):
    pytest.importorskip("onnxruntime", reason="the [bench] extra is not installed (make installs it)")
    from edgeshop.report.metrics import top_k_accuracy
    from edgeshop.report.onnx_baseline import OnnxModel, quantize_static_int8, tflite_to_onnx

    reference = Classifier(pipeline["float32"])
    float_onnx = tflite_to_onnx(pipeline["float32"], tmp_path / "float32.onnx")
    spec = reference.input_spec
    test = _images(synthetic_data["test"], limit=36)
    pixels = [preprocess(read_image(p), spec) for p in test]
    truth = [reference.labels.index(p.parent.name) for p in test]

    onnx_float = OnnxModel(float_onnx, threads=1)
    for p in pixels[:8]:
        np.testing.assert_allclose(onnx_float.scores(p.astype(np.float32)), reference.scores_from_pixels(p),
                                   atol=1e-4)
    calibration = np.stack([preprocess(read_image(p), spec) for p in _images(synthetic_data["train"])])
    int8_onnx = quantize_static_int8(float_onnx, tmp_path / "int8.onnx", calibration.astype(np.float32))
    onnx_int8 = OnnxModel(int8_onnx, threads=1)
    float_top1 = top_k_accuracy(np.array(truth), np.stack([onnx_float.scores(p.astype(np.float32)) for p in pixels]))
    int8_top1 = top_k_accuracy(np.array(truth), np.stack([onnx_int8.scores(p.astype(np.float32)) for p in pixels]))
    assert float_top1 > 0.8 and int8_top1 >= float_top1 - 0.1
    assert int8_onnx.stat().st_size < float_onnx.stat().st_size


def test_time_interleaved_alternates_calls():
    order: list[str] = []
    calls = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    stats = time_interleaved(calls, runs=4, warmup=1)
    assert order == ["a", "b"] * 6  # first call, one warm-up, four timed rounds
    assert stats["a"].runs == 4 and stats["b"].p50_ms >= 0
    with pytest.raises(ValueError):
        time_interleaved(calls, runs=0)
    order.clear()
    stats = time_interleaved(calls, runs=4, warmup=0, block=2)
    # first calls, then per round: one settling call + two timed calls of each
    assert order == ["a", "b"] + (["a"] * 3 + ["b"] * 3) * 2
    assert stats["a"].runs == 4


def test_bench_suite_end_to_end(pipeline, synthetic_data, tmp_path):
    pytest.importorskip("onnxruntime", reason="the [bench] extra is not installed (make installs it)")
    out = tmp_path / "results.json"
    command = [sys.executable, str(ROOT / "tools" / "bench_suite.py"), "--int8", str(pipeline["int8"]),
               "--float16", str(pipeline["float16"]), "--data", str(synthetic_data["test"]),
               "--calibration", str(synthetic_data["train"]), "--threads", "1", "--runs", "3",
               "--work", str(tmp_path / "work"), "--json", str(out), "--no-readme"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    latency = figures["threads"]["1"]["latency"]
    for name in ("litert_int8", "litert_float32", "classify_int8_640x480", "pair_invoke", "onnx_int8", "onnx_float32",
                 "keras_predict", "keras_call", "litert_int8_pruned"):
        assert latency[name]["p50_ms"] > 0, name
    assert figures["threads"]["1"]["camera_loop"]["frames"] == 300
    assert figures["accuracy"]["int8"] > 0.8 and figures["accuracy"]["images"] > 0
    assert "640x480" in result.stdout and "ONNX Runtime" in result.stdout


def test_generated_readme_blocks_replace_only_their_text(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from readme_block import markers, replace_block
    finally:
        sys.path.remove(str(ROOT / "tools"))
    begin, end = markers("bench")
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text(f"# T\nbefore\n{begin}\nold\n{end}\nafter\n")
    (tmp_path / "README.md").write_text("# no blocks here\n")
    assert replace_block("bench", "| new |", root=tmp_path) == page
    assert page.read_text() == f"# T\nbefore\n{begin}\n| new |\n{end}\nafter\n"
    (tmp_path / "README.md").write_text(f"{begin}\n{end}\n")  # the same block twice is refused
    with pytest.raises(SystemExit, match="exactly one document"):
        replace_block("bench", "x", root=tmp_path)
    page.write_text("no markers")
    (tmp_path / "README.md").write_text("no markers")
    with pytest.raises(SystemExit, match="no document"):
        replace_block("bench", "x", root=tmp_path)


def test_the_readme_claims_about_classify_overhead_hold_for_the_committed_bench():
    """The notes under the bench table are hand-written; what they claim about the target must
    agree with the committed bench/results.json (a rerun that breaks the claim fails here)."""
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from readme_block import block_file
    finally:
        sys.path.remove(str(ROOT / "tools"))
    readme = block_file("bench").read_text()
    notes = readme[readme.index("<!-- bench:end -->"):readme.index("- **int8 vs float32**")]
    ratios = {t: r["latency"]["classify_int8_640x480"]["p50_ms"] / r["latency"]["pair_invoke"]["p50_ms"]
              for t, r in results["threads"].items()}
    assert "under the 1.10x target" in notes
    assert all(ratio <= 1.10 for ratio in ratios.values()), ratios
    quoted = f"{ratios['1']:.2f}x / {ratios['2']:.2f}x"
    assert quoted in notes, f"the notes should quote {quoted}"
