"""Rewrites of a finished .tflite file for benchmarks, where the training run is not at hand.

`float16_to_float32`: the float32 counterpart of a float16 export. A float16 export
stores each weight as a FLOAT16 constant feeding a DEQUANTIZE op. For a benchmark
that compares int8 with float32 on a clean checkout (where the training run is not
available) we rewrite the file: every such constant becomes a FLOAT32 constant
holding the same values and its DEQUANTIZE op is dropped. The graph and the weights are
otherwise byte-for-byte the float16 model's, so the two differ only in storage.

`int8_io_to_uint8`: give a fully integer model with int8 input/output the uint8 input and
output that MediaPipe Tasks and the TFLite Task Library require, by adding the QUANTIZE
ops the converter adds for `inference_input_type=tf.uint8`: uint8 -> int8 at the input,
int8 -> uint8 at the output, each with the same scale and the zero point moved by 128, so
scores are unchanged. It upgrades models exported before uint8 became the default
(`edgeshop-export --reexport`) without their training run.

`magnitude_prune`: zero the smallest weights of every CONV_2D and FULLY_CONNECTED
kernel, to measure what a sparse model of this network costs at run time (size after
gzip, latency). It is not a training method: accuracy needs pruning during training
(`edgeshop-train --sparsity`), which gives the same storage and the same sparsity.
"""

from __future__ import annotations

import numpy as np

from edgeshop.tflite.modelcard import attach_archive, split_archive

_FLOAT32, _FLOAT16, _UINT8, _INT8 = 0, 1, 3, 9  # tflite::TensorType
_DEQUANTIZE, _CONV_2D, _FULLY_CONNECTED, _QUANTIZE = 6, 3, 9, 114  # tflite::BuiltinOperator
_NUMPY_TYPES = {0: "<f4", 1: "<f2", 9: "i1"}  # FLOAT32, FLOAT16, INT8


def _read(content: bytes):
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(content))


def _write(model, original: bytes) -> bytes:
    """The rewritten flatbuffer followed by the original's whole archive (card, labels, anything else)."""
    from tensorflow.lite.tools import flatbuffer_utils

    rewritten = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    members = split_archive(original)[1]
    return attach_archive(rewritten, members) if members else rewritten


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


def int8_io_to_uint8(content: bytes) -> bytes:
    """Return ``content`` with every int8 model input and output turned uint8 (scores unchanged)."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = _read(content)
    subgraph = model.subgraphs[0]
    renamed: dict[int, int] = {}  # old int8 tensor -> its new uint8 twin, for the signatures
    front, back = [], []
    for io, ops in ((subgraph.inputs, front), (subgraph.outputs, back)):
        for position, index in enumerate(io):
            if subgraph.tensors[index].type != _INT8:
                continue
            subgraph.tensors.append(_uint8_twin(subgraph.tensors[index], schema))
            twin = len(subgraph.tensors) - 1
            # The converter's versions: QUANTIZE to int8 is version 2, to uint8 version 1.
            to_int8 = io is subgraph.inputs
            op = schema.OperatorT()
            op.opcodeIndex = _opcode(model, schema, _QUANTIZE, 2 if to_int8 else 1)
            op.inputs, op.outputs = ([twin], [index]) if to_int8 else ([index], [twin])
            op.builtinOptionsType = schema.BuiltinOptions.QuantizeOptions
            op.builtinOptions = schema.QuantizeOptionsT()
            ops.append(op)
            io[position] = twin
            renamed[index] = twin
    if not renamed:
        return content
    subgraph.operators = front + list(subgraph.operators) + back
    for signature in model.signatureDefs or []:
        for entry in list(signature.inputs or []) + list(signature.outputs or []):
            entry.tensorIndex = renamed.get(entry.tensorIndex, entry.tensorIndex)
    return _write(model, content)


def _uint8_twin(tensor, schema):
    twin = schema.TensorT()
    twin.name = tensor.name
    tensor.name = (tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name) + "_int8"
    twin.shape = np.array(tensor.shape, dtype=np.int32)
    if tensor.shapeSignature is not None:
        twin.shapeSignature = np.array(tensor.shapeSignature, dtype=np.int32)
    twin.type = _UINT8
    twin.buffer = 0  # buffer 0 is the flatbuffer's empty sentinel: not a constant
    q = tensor.quantization
    twin.quantization = schema.QuantizationParametersT()
    twin.quantization.scale = np.array(q.scale, dtype=np.float32)
    twin.quantization.zeroPoint = np.array(q.zeroPoint, dtype=np.int64) + 128
    return twin


def _opcode(model, schema, builtin: int, version: int) -> int:
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin and code.version == version:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)  # the old int8 field saturates at 127
    code.version = version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


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


_DYNAMIC_MIN_ELEMENTS = 1024  # the TF converter's threshold: smaller kernels stay float
_DEPTHWISE_CONV_2D = 4
# hybrid per-channel versions, as the converter writes them; the channel axis of each kernel
_DYNAMIC_OP_VERSIONS = {_CONV_2D: 5, _FULLY_CONNECTED: 12, _DEPTHWISE_CONV_2D: 6}
_CHANNEL_AXIS = {_CONV_2D: 0, _FULLY_CONNECTED: 0, _DEPTHWISE_CONV_2D: 3}


def dynamic_range_weights(content: bytes, per_channel: bool = True, depthwise: bool = False) -> bytes:
    """Return a float32 ``content`` with its CONV_2D and FULLY_CONNECTED kernels stored as int8
    (symmetric, per output channel unless ``per_channel`` is False); activations stay float and
    the runtime quantizes them per call (XNNPACK's dynamically quantized kernels).

    The scheme is the TF converter's dynamic-range one (scale = max|w| / 127, zero point 0,
    kernels under 1024 values left float), except that DEPTHWISE_CONV_2D kernels stay float:
    XNNPACK has no dynamically quantized depthwise kernel, and LiteRT's own hybrid depthwise
    kernel splits the graph into one XNNPACK partition per block (1.8x slower than float32).
    ``depthwise=True`` quantizes them too: the converter's own output, for comparison.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    model = _read(content)
    done = set()
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            builtin = _builtin(model, op)
            if builtin not in _DYNAMIC_OP_VERSIONS or len(op.inputs) < 2 or (
                    builtin == _DEPTHWISE_CONV_2D and not depthwise):
                continue
            if subgraph.tensors[op.inputs[0]].type != _FLOAT32:
                continue
            kernel = subgraph.tensors[op.inputs[1]]
            buffer = model.buffers[kernel.buffer]
            if buffer.data is None or kernel.type != _FLOAT32 or kernel.buffer in done:
                continue
            values = np.frombuffer(bytes(buffer.data), dtype="<f4").reshape(kernel.shape)
            if values.size < _DYNAMIC_MIN_ELEMENTS:
                continue
            axis = _CHANNEL_AXIS[builtin]
            rows = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
            peak = np.abs(rows).max(axis=1) if per_channel else np.array([np.abs(rows).max()])
            scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
            step = scale[:, None] if per_channel else scale[0]
            quantized = np.clip(np.round(rows / step), -127, 127).astype(np.int8)
            quantized = np.moveaxis(quantized.reshape(np.moveaxis(values, axis, 0).shape), 0, axis)
            buffer.data = np.frombuffer(np.ascontiguousarray(quantized).tobytes(), dtype=np.uint8)
            kernel.type = _INT8
            kernel.quantization = schema.QuantizationParametersT()
            kernel.quantization.scale = scale
            kernel.quantization.zeroPoint = np.zeros(len(scale), dtype=np.int64)
            kernel.quantization.quantizedDimension = axis
            done.add(kernel.buffer)
            op.opcodeIndex = _opcode(model, schema, builtin, _DYNAMIC_OP_VERSIONS[builtin])
            if builtin == _FULLY_CONNECTED and op.builtinOptions is not None:
                op.builtinOptions.asymmetricQuantizeInputs = True  # as the converter: int8 zero point per call
    if not done:
        raise ValueError("no float32 CONV_2D or FULLY_CONNECTED kernel to quantize (is the model float32?)")
    return _write(model, content)


def with_input_size(content: bytes, size: int) -> bytes:
    """Return ``content`` (a fully convolutional model ending in a global MEAN, card kept)
    taking ``size`` x ``size`` images: the input shape and the card's input size change,
    the runtime derives every other shape from them when it allocates."""
    from dataclasses import replace

    from edgeshop.tflite.modelcard import embed_card, read_card

    model = _read(content)
    subgraph = model.subgraphs[0]
    tensor = subgraph.tensors[subgraph.inputs[0]]
    tensor.shape = np.array([tensor.shape[0], size, size, tensor.shape[3]], dtype=np.int32)
    if tensor.shapeSignature is not None:
        tensor.shapeSignature = np.array([tensor.shapeSignature[0], size, size, tensor.shapeSignature[3]],
                                         dtype=np.int32)
    rewritten = _write(model, content)
    card = read_card(content)
    if card is None:
        return rewritten
    return embed_card(rewritten, replace(card, input=replace(card.input, height=size, width=size)))


def block_ends(content: bytes) -> list[int]:
    """Indices of the ops after which one activation alone is alive (the cut points of a chain
    network: block boundaries, and every op of a block without a residual connection)."""
    model = _read(content)
    subgraph = model.subgraphs[0]
    last_use: dict[int, int] = {}
    for index, op in enumerate(subgraph.operators):
        for tensor in op.inputs:
            last_use[tensor] = index
    produced: set[int] = set()
    ends = []
    for index, op in enumerate(subgraph.operators[:-1]):
        produced.update(int(t) for t in op.outputs)
        alive = [t for t in produced if last_use.get(t, -1) > index]
        if alive == [int(op.outputs[0])]:
            ends.append(index)
    return ends


def cut_after(content: bytes, index: int) -> bytes:
    """The graph's prefix up to op ``index`` (included), whose output becomes the model's output:
    timing consecutive prefixes shows what each part of a network costs."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = _read(content)
    subgraph = model.subgraphs[0]
    subgraph.operators = subgraph.operators[: index + 1]
    subgraph.outputs = np.array([subgraph.operators[-1].outputs[0]], dtype=np.int32)
    model.signatureDefs = None  # they name the dropped output
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
