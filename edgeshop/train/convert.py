"""Keras model -> TFLite flatbuffer: the formats, the converter's representative data and the
fully integer converter (used by export and by the latency-target search)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeshop.errors import EdgeshopError
from edgeshop.native_logs import hidden_chatter
from edgeshop.train._keras import keras, tf
from edgeshop.train.run_dir import RunDir
from edgeshop.train.run_model import is_qat, load_run_model
from edgeshop.train.tflite_rewrite import dynamic_range_weights

FORMATS = ("float32", "float16", "dynamic", "int8")
# I/O of full-integer models. uint8 is what MediaPipe Tasks and the Task Library accept;
# int8 is for users of interpreters that want the graph's own type at the edges.
INTEGER_IO_TYPES = ("uint8", "int8")


def full_range_image(height: int, width: int) -> np.ndarray:
    """A smooth gradient spanning exactly 0..255 in every channel."""
    ramp = np.linspace(0.0, 255.0, width, dtype=np.float32)
    return np.repeat(np.broadcast_to(ramp, (height, width))[:, :, None], 3, axis=2)


def representative_dataset(images: np.ndarray):
    """The converter's representative images: a full-range gradient first, then ``images``."""

    def generate():
        # First a full-range gradient: pins the int8 input to scale 1, zero point -128,
        # so devices feed raw pixels with no arithmetic (see Classifier._to_input).
        yield [full_range_image(*images.shape[1:3])[None]]
        for image in images:
            yield [image[None].astype(np.float32)]

    return generate


def int8_converter(converter, representative_images: np.ndarray, io_type: str = "uint8"):
    """``converter`` set up for a fully integer model with ``io_type`` input and output, its
    activation ranges measured on ``representative_images``."""
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    # Needed even for QAT models: the converter measures the ranges of the in-graph
    # normalisation and asks for it when the I/O types are integer.
    converter.representative_dataset = representative_dataset(representative_images)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    # uint8 adds one QUANTIZE op at each end (uint8 <-> int8, same scale, zero point
    # moved by 128); the interior stays int8.
    converter.inference_input_type = converter.inference_output_type = tf.uint8 if io_type == "uint8" else tf.int8
    return converter


def convert(
    run_dir: Path, fmt: str, ptq: bool = False, io_type: str = "uint8"
) -> tuple[bytes, dict[str, Any], keras.Model]:
    """The flatbuffer for ``fmt`` and a description of how it was made.

    int8 converts the QAT model when the run has one (unless ``ptq``), else applies
    post-training quantization to the float model, its ranges measured on representative training images.
    Also returns the Keras model that was converted, for verification.
    """
    if fmt not in FORMATS:
        raise EdgeshopError(f"format must be one of {FORMATS}, got {fmt!r}")
    if io_type not in INTEGER_IO_TYPES:
        raise EdgeshopError(f"integer I/O type must be one of {INTEGER_IO_TYPES}, got {io_type!r}")
    run_dir = Path(run_dir)
    # int8 converts the QAT model itself; float formats and PTQ take the same final
    # weights in a plain float model, so a float reference is the int8 model's twin.
    qat_int8 = fmt == "int8" and not ptq
    model = load_run_model(run_dir, final=True, as_float=not qat_int8)
    method = fmt
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if fmt == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif fmt == "int8":
        method = "qat_int8" if is_qat(model) else "ptq_int8"
        int8_converter(converter, RunDir(run_dir).representative_images(), io_type)
    try:
        with hidden_chatter():  # the converter's "fully_quantize: 0, inference_type: 6, ..." line
            flatbuffer = converter.convert()
    except Exception as exc:  # noqa: BLE001 - the converter raises many types; keep its message
        raise EdgeshopError(f"{run_dir}: TFLite conversion to {fmt} failed: {exc}") from exc
    if fmt == "dynamic":
        # Not the converter's Optimize.DEFAULT: it also makes depthwise kernels int8, which XNNPACK
        # cannot run, and the graph splits into one partition per block (studies/performance).
        flatbuffer = dynamic_range_weights(flatbuffer)
    return flatbuffer, {"format": fmt, "method": method}, model
