"""Read and replace the weights of a finished model's classifier layer, with any number of classes.

Runtime side, no TensorFlow (the TFLite schema of ai-edge-litert, as in `tflite_head`).
The head is `embedding -> FULLY_CONNECTED(W: N x D, b: N) -> SOFTMAX -> [QUANTIZE] -> output`
(a cosine head has no b: it reads as zeros and only zeros can be written).
`read_head_weights` gives W and b as float32 whatever the storage; `with_head_weights`
writes new ones, where N may differ from the original: enrolment adds rows, removal
drops them. Every tensor from the layer's output to the model's output gets the new
class count, so every client (MediaPipe included) sees N scores.

Storage kept as found:
- int8: W int8 with its scale (per-tensor: the existing scale, new rows clipped to +-127,
  which `edgeshop.adapt.enroll` keeps inside by matching the trained rows' norms; per-channel:
  one scale per row), b int32 with scale = input scale x W scale, zero points 0;
- float16: W and b are FLOAT16 constants feeding DEQUANTIZE ops; both tensors change;
- float32: plain constants.
New data always goes into new buffers, so a buffer the converter shared with another
tensor is never changed under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeshop.errors import ModelLoadError
from edgeshop.tflite.tflite_head import _schema, find_head, read_model, write_model

_FLOAT32, _FLOAT16, _INT32, _INT8 = 0, 1, 2, 9  # tflite::TensorType
_DEQUANTIZE = 6
_NUMPY = {_FLOAT32: "<f4", _FLOAT16: "<f2", _INT32: "<i4", _INT8: "i1"}


@dataclass(frozen=True)
class HeadWeights:
    """The classifier layer of a model in float32: logits = embedding @ weights.T + bias."""

    weights: np.ndarray  # N x D
    bias: np.ndarray  # N
    storage: str  # "int8" | "float16" | "float32"
    has_bias: bool = True  # False: a cosine head's layer, whose bias can only be 0


@dataclass
class _Constant:
    """A constant input of the layer: the tensor the layer reads and, for float16, its stored source."""

    read: int  # tensor index the FULLY_CONNECTED reads
    stored: int  # tensor index holding the buffer (== read unless DEQUANTIZE'd)


def _layer(model: Any, source: str):
    head = find_head(model, source)
    if head.embedding is None:
        raise ModelLoadError(f"{source}: its logits do not come from a dense layer, so there is no class layer "
                             "to edit; export the classifier with edgeshop-export (its head is a dense layer)")
    subgraph = model.subgraphs[0]
    producer = {int(t): i for i, op in enumerate(subgraph.operators) for t in op.outputs}
    op = subgraph.operators[producer[head.logits]]
    if len(op.inputs) < 2:
        raise ModelLoadError(f"{source}: its dense layer has no weights input; not an edgeshop export")
    # A cosine head (train/cosine_head.py) has no bias: inputs[2] is -1 (or absent).
    has_bias = len(op.inputs) >= 3 and int(op.inputs[2]) >= 0
    constants = []
    for index in (int(op.inputs[1]), int(op.inputs[2])) if has_bias else (int(op.inputs[1]),):
        stored = index
        if index in producer:
            before = subgraph.operators[producer[index]]
            code = model.operatorCodes[before.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) != _DEQUANTIZE:
                raise ModelLoadError(f"{source}: the dense layer's weights are computed, not stored; "
                                     "not an edgeshop export")
            stored = int(before.inputs[0])
        if subgraph.tensors[stored].type not in _NUMPY or model.buffers[subgraph.tensors[stored].buffer].data is None:
            raise ModelLoadError(f"{source}: the dense layer's weights are not stored constants of a known type")
        constants.append(_Constant(index, stored))
    if not has_bias:
        constants.append(None)
    _check_shapes(subgraph, op, constants[0], constants[1], source)
    return head, subgraph, op, constants[0], constants[1]


def _check_shapes(subgraph: Any, op: Any, w_const: _Constant, b_const: _Constant | None, source: str) -> None:
    """W is N x D with one scale or one per row, b has N values with as many scales: what the
    readers below index; check_model has already matched every buffer to its tensor's shape."""
    weights = subgraph.tensors[w_const.stored]
    shape = [int(d) for d in weights.shape]
    if len(shape) != 2 or min(shape) < 1:
        raise ModelLoadError(f"{source}: the dense layer's weights have shape {shape}, not classes x features; "
                             "not an edgeshop export")
    if _scales(weights) is not None and len(_scales(weights)) > 1 and weights.quantization.quantizedDimension != 0:
        raise ModelLoadError(f"{source}: the dense layer's weights are quantized per feature, not per class; "
                             "not an edgeshop export")
    if b_const is not None:
        bias = subgraph.tensors[b_const.stored]
        b_shape = [int(d) for d in bias.shape]
        scales = _scales(bias)
        if b_shape != shape[:1] or (scales is not None and len(scales) not in (1, shape[0])):
            raise ModelLoadError(f"{source}: the dense layer's bias has shape {b_shape} for {shape[0]} classes; "
                                 "not an edgeshop export")
    if weights.type == _INT8 and _scales(subgraph.tensors[int(op.inputs[0])]) is None:
        raise ModelLoadError(f"{source}: the dense layer's int8 input has no quantization; not an edgeshop export")


def _values(model: Any, subgraph: Any, constant: _Constant) -> np.ndarray:
    tensor = subgraph.tensors[constant.stored]
    raw = np.frombuffer(bytes(model.buffers[tensor.buffer].data), dtype=_NUMPY[tensor.type])
    return raw.reshape([int(d) for d in tensor.shape])


def _scales(tensor: Any) -> np.ndarray | None:
    q = tensor.quantization
    if q is None or q.scale is None or not len(q.scale):
        return None
    return np.asarray(q.scale, dtype=np.float64)


def read_head_weights(content: bytes, source: str = "model") -> HeadWeights:
    """The classifier layer's W (N x D) and b (N) as float32."""
    model = read_model(content, source)
    _, subgraph, op, w_const, b_const = _layer(model, source)
    weights = _values(model, subgraph, w_const).astype(np.float64)
    w_tensor = subgraph.tensors[w_const.stored]
    if b_const is None:  # no bias: a cosine head
        bias, b_tensor = np.zeros(weights.shape[0]), None
    else:
        bias = _values(model, subgraph, b_const).astype(np.float64)
        b_tensor = subgraph.tensors[b_const.stored]
    storage = {_INT8: "int8", _FLOAT16: "float16", _FLOAT32: "float32"}.get(w_tensor.type)
    if storage is None:
        raise ModelLoadError(f"{source}: dense-layer weights of type {w_tensor.type} are not supported")
    if storage == "int8":
        w_scale = _scales(w_tensor)
        b_scale = _scales(b_tensor) if b_tensor is not None else np.ones(1)
        if w_scale is None or b_scale is None:
            raise ModelLoadError(f"{source}: int8 dense-layer weights without quantization parameters")
        weights *= (w_scale[:, None] if len(w_scale) > 1 else w_scale[0])
        bias *= b_scale if len(b_scale) > 1 else b_scale[0]
    return HeadWeights(weights.astype(np.float32), bias.astype(np.float32), storage, has_bias=b_const is not None)


def with_head_weights(content: bytes, weights: np.ndarray, bias: np.ndarray, source: str = "model") -> bytes:
    """``content`` whose classifier layer is ``weights`` (N x D) and ``bias`` (N), N free; archive kept
    (the caller updates the labels to match)."""
    schema = _schema()
    model = read_model(content, source)
    _, subgraph, op, w_const, b_const = _layer(model, source)
    old = _values(model, subgraph, w_const)
    weights, bias = np.asarray(weights, np.float64), np.asarray(bias, np.float64)
    if weights.ndim != 2 or weights.shape[1] != old.shape[1] or bias.shape != (weights.shape[0],):
        raise ValueError(f"head weights must be N x {old.shape[1]} with N biases, got {weights.shape} and "
                         f"{bias.shape}")
    if weights.shape[0] < 1:
        raise ValueError("a classifier needs at least one class")
    n = weights.shape[0]
    if b_const is None and np.any(bias != 0):
        raise ValueError(f"{source}: its dense layer has no bias (a cosine head); new biases must be 0")
    w_tensor = subgraph.tensors[w_const.stored]
    b_tensor = subgraph.tensors[b_const.stored] if b_const is not None else None
    if w_tensor.type == _INT8:
        input_scale = float(_scales(subgraph.tensors[int(op.inputs[0])])[0])
        w_scale = _scales(w_tensor)
        if len(w_scale) > 1:  # per-channel: each row its own scale
            w_scale = np.maximum(np.abs(weights).max(axis=1), 1e-12) / 127.0
            _set_quantization(schema, w_tensor, w_scale, axis=0)
            if b_tensor is not None:
                _set_quantization(schema, b_tensor, w_scale * input_scale, axis=0)
            w_stored = np.clip(np.round(weights / w_scale[:, None]), -127, 127).astype("i1")
            b_stored = np.round(bias / (w_scale * input_scale)).astype("<i4")
        else:
            w_stored = np.clip(np.round(weights / w_scale[0]), -127, 127).astype("i1")
            b_stored = np.round(bias / float(_scales(b_tensor)[0])).astype("<i4") if b_tensor is not None else None
    else:
        dtype = _NUMPY[w_tensor.type]
        w_stored = weights.astype(dtype)
        b_stored = bias.astype(_NUMPY[b_tensor.type]) if b_tensor is not None else None
    _store(schema, model, w_tensor, w_stored)
    if b_tensor is not None:
        _store(schema, model, b_tensor, b_stored)
    for constant in (w_const, b_const):
        if constant is None:
            continue
        if constant.read != constant.stored:  # the DEQUANTIZE'd float32 twin has the same shape
            subgraph.tensors[constant.read].shape = list(subgraph.tensors[constant.stored].shape)
    for index in _class_axis_tensors(subgraph, int(op.outputs[0])):
        _set_class_count(subgraph.tensors[index], n)
    return write_model(model, content)


def _store(schema: Any, model: Any, tensor: Any, values: np.ndarray) -> None:
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(values).tobytes(), dtype=np.uint8)
    model.buffers.append(buffer)
    tensor.buffer = len(model.buffers) - 1
    tensor.shape = list(values.shape)
    if tensor.shapeSignature is not None and len(tensor.shapeSignature):
        tensor.shapeSignature = list(values.shape)


def _set_quantization(schema: Any, tensor: Any, scales: np.ndarray, axis: int) -> None:
    q = tensor.quantization or schema.QuantizationParametersT()
    q.scale = [float(s) for s in scales]
    q.zeroPoint = [0] * len(scales)
    q.quantizedDimension = axis
    tensor.quantization = q


def _class_axis_tensors(subgraph: Any, logits: int) -> list[int]:
    """The layer's output and every tensor derived from it op by op up to the model's output
    (SOFTMAX, QUANTIZE, DEQUANTIZE): each has the class count as its last axis."""
    consumers: dict[int, list[Any]] = {}
    for candidate in subgraph.operators:
        for t in candidate.inputs:
            consumers.setdefault(int(t), []).append(candidate)
    chain, frontier = [logits], [logits]
    while frontier:
        tensor = frontier.pop()
        for consumer in consumers.get(tensor, []):
            for t in consumer.outputs:
                if int(t) not in chain:
                    chain.append(int(t))
                    frontier.append(int(t))
    return chain


def _set_class_count(tensor: Any, n: int) -> None:
    tensor.shape = [*list(tensor.shape)[:-1], n]
    if tensor.shapeSignature is not None and len(tensor.shapeSignature):
        tensor.shapeSignature = [*list(tensor.shapeSignature)[:-1], n]
