"""Rewrites of a finished .tflite file for benchmarks, where the training run is not at hand.

`float16_to_float32`: the float32 counterpart of a float16 export. A float16 export
stores each weight as a FLOAT16 constant feeding a DEQUANTIZE op. For a benchmark
that compares int8 with float32 on a clean checkout (where the training run is not
available) we rewrite the file: every such constant becomes a FLOAT32 constant
holding the same values and its DEQUANTIZE op is dropped. The graph and the weights are
otherwise byte-for-byte the float16 model's, so the two differ only in storage.

`magnitude_prune`: zero the smallest weights of every CONV_2D and FULLY_CONNECTED
kernel, to measure what a sparse model of this network costs at run time (size after
gzip, latency). It is not a training method: accuracy needs pruning during training
(`edgeshop-train --prune`), which gives the same storage and the same sparsity.
"""

from __future__ import annotations

import numpy as np

from edgeshop.runtime.modelcard import embed_card, read_card

_FLOAT32, _FLOAT16 = 0, 1  # tflite::TensorType
_DEQUANTIZE, _CONV_2D, _FULLY_CONNECTED = 6, 3, 9  # tflite::BuiltinOperator
_NUMPY_TYPES = {0: "<f4", 1: "<f2", 9: "i1"}  # FLOAT32, FLOAT16, INT8


def _read(content: bytes):
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(content))


def _write(model, original: bytes) -> bytes:
    from tensorflow.lite.tools import flatbuffer_utils

    rewritten = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    card = read_card(original)
    return embed_card(rewritten, card) if card is not None else rewritten


def _builtin(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def float16_to_float32(content: bytes) -> bytes:
    """Return ``content`` (a float16 .tflite, card kept) with its weights stored as float32."""
    model = _read(content)
    for subgraph in model.subgraphs:
        producers = {}  # float32 tensor index -> the float16 constant it dequantizes
        kept = []
        for op in subgraph.operators:
            builtin = _builtin(model, op)
            source = subgraph.tensors[op.inputs[0]] if len(op.inputs) else None
            if (builtin == _DEQUANTIZE and source is not None and source.type == _FLOAT16
                    and model.buffers[source.buffer].data is not None):
                producers[op.outputs[0]] = source
            else:
                kept.append(op)
        if not producers:
            continue
        for output_index, source in producers.items():
            values = np.frombuffer(bytes(model.buffers[source.buffer].data), dtype="<f2").astype("<f4")
            buffer = type(model.buffers[0])()
            buffer.data = np.frombuffer(values.tobytes(), dtype=np.uint8)
            model.buffers.append(buffer)
            model.buffers[source.buffer].data = None  # the float16 copy is no longer read
            target = subgraph.tensors[output_index]
            target.buffer = len(model.buffers) - 1
            target.type = _FLOAT32
        subgraph.operators = kept
    return _write(model, content)


def magnitude_prune(content: bytes, sparsity: float) -> bytes:
    """Return ``content`` with the smallest ``sparsity`` of each conv/dense kernel set to 0.

    Works on float32 and int8 (symmetric, zero point 0) kernels; others are left alone.
    """
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1); got {sparsity}")
    model = _read(content)
    done = set()
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if _builtin(model, op) not in (_CONV_2D, _FULLY_CONNECTED):
                continue
            kernel = subgraph.tensors[op.inputs[1]]
            buffer = model.buffers[kernel.buffer]
            if kernel.buffer in done or buffer.data is None or kernel.type not in _NUMPY_TYPES:
                continue
            values = np.frombuffer(bytes(buffer.data), dtype=_NUMPY_TYPES[kernel.type]).copy()
            magnitude = np.abs(values.astype(np.float32))
            values[magnitude <= np.quantile(magnitude, sparsity)] = 0
            buffer.data = np.frombuffer(values.tobytes(), dtype=np.uint8)
            done.add(kernel.buffer)
    return _write(model, content)
