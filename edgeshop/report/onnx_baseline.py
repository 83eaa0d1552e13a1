"""The same network through ONNX Runtime, float32 and static int8: the alternative to beat.

The float32 TFLite model is translated to ONNX (tflite2onnx: same graph, same weights,
NCHW layout), then quantized the way ONNX Runtime documents for CPUs: pre-processing
(shape inference + graph optimisation), static QDQ quantization, per-channel int8
weights, uint8 activations, MinMax ranges (ONNX Runtime calls this calibration) measured
on the same representative images as edgeshop's int8 converter. Needs the `bench` extra
(onnx, onnxruntime, tflite2onnx).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgeshop.errors import EdgeshopError

OPSET = 17


def _require_onnx():
    try:
        import onnxruntime
        import tflite2onnx
    except ImportError as exc:
        raise EdgeshopError(f"the ONNX comparison needs the bench extra: pip install 'edgeshop[bench]' ({exc})"
                            ) from None
    return onnxruntime, tflite2onnx


def tflite_to_onnx(float32_tflite: Path, onnx_path: Path) -> Path:
    """Translate a float32 .tflite into ONNX (input NCHW float pixels, as the TFLite model's)."""
    _, tflite2onnx = _require_onnx()
    import onnx
    from onnx import version_converter

    tflite2onnx.convert(str(float32_tflite), str(onnx_path))
    # tflite2onnx writes opset 11; per-channel QDQ needs DequantizeLinear's axis (opset 13+).
    onnx.save(version_converter.convert_version(onnx.load(str(onnx_path)), OPSET), str(onnx_path))
    return onnx_path


class _RepresentativeImages:
    """ONNX Runtime's CalibrationDataReader protocol over NHWC pixel arrays."""

    def __init__(self, input_name: str, pixels: np.ndarray) -> None:
        self._feeds = iter({input_name: _to_nchw(p[None])} for p in pixels)

    def get_next(self):
        return next(self._feeds, None)


def quantize_static_int8(float_onnx: Path, int8_onnx: Path, representative_pixels: np.ndarray,
                         reduce_range: bool = False) -> Path:
    """ONNX Runtime static int8 quantization (QDQ, per-channel S8 weights, U8 activations).

    ``reduce_range``: 7-bit weights, which ONNX Runtime's documentation asks for on x86 CPUs
    without VNNI (AVX2, AVX-512 without VNNI), where U8S8 products can saturate."""
    onnxruntime, _ = _require_onnx()
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_onnx), str(prepared))
        session = onnxruntime.InferenceSession(str(prepared), providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        quantize_static(str(prepared), str(int8_onnx), _RepresentativeImages(input_name, representative_pixels),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        reduce_range=reduce_range)
    return int8_onnx


class OnnxModel:
    """An ONNX Runtime session on the CPU with a fixed thread count, fed NHWC pixels."""

    def __init__(self, path: Path, threads: int, spinning: bool = True) -> None:
        """``spinning=False`` stops idle workers busy-waiting for the next run: needed when
        other runtimes are timed in the same process, whose cores they would take."""
        onnxruntime, _ = _require_onnx()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def scores(self, pixels: np.ndarray) -> np.ndarray:
        """Scores for one HxWx3 RGB pixel array (0-255, the model's input size)."""
        return self.session.run(None, {self.input_name: _to_nchw(pixels[None])})[0][0]

    def invoke_callable(self, pixels: np.ndarray):
        """A bare session.run on a prepared input, for timing."""
        feed = {self.input_name: _to_nchw(pixels[None])}
        return lambda: self.session.run(None, feed)


def _to_nchw(batch: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
