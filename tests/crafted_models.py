"""Crafted model files, and a runner that loads each in a child process.

Each generator edits a real model (the committed tiny int8 model or the shipped grocery
int8/float16 models) through the TFLite schema's object API, the way an attacker edits a
downloaded model, and keeps its archive (card, labels.txt). The runner
(``python tests/crafted_models.py MODEL...``) loads every model the way the runtime does
(Classifier, a frame classified, HeadProbe, the head readers) and prints one JSON line per
model, so a segfault or a hang shows up as the exit code or timeout of the child.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
TINY = TESTS / "data" / "tiny_int8.tflite"
GROCERY_INT8 = REPO / "models" / "grocery" / "grocery_int8.tflite"
GROCERY_FP16 = REPO / "models" / "grocery" / "grocery_fp16.tflite"

_SOFTMAX, _FULLY_CONNECTED, _CONV_2D, _QUANTIZE = 25, 9, 3, 114
_UINT8, _INT8 = 3, 9


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def edited(base: Path, edit: Callable) -> bytes:
    """``base`` with ``edit(model)`` applied to its flatbuffer object tree; archive kept."""
    from edgeshop.tflite.modelcard import split_archive
    from edgeshop.tflite.tflite_head import write_model

    content = base.read_bytes()
    model = _schema().ModelT.InitFromPackedBuf(bytearray(split_archive(content)[0]), 0)
    edit(model)
    return write_model(model, content)


def _builtin(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _op(model, builtin: int, nth: int = 0):
    return [op for op in model.subgraphs[0].operators if _builtin(model, op) == builtin][nth]


def _input(model):
    return model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]]


def _output(model):
    return model.subgraphs[0].tensors[model.subgraphs[0].outputs[0]]


def _fc_weights(model):
    return model.subgraphs[0].tensors[_op(model, _FULLY_CONNECTED).inputs[1]]


def _set(tensor, **fields):
    for name, value in fields.items():
        setattr(tensor.quantization, name, value)


def _add_quantize_reading_its_own_output(model):
    """A QUANTIZE op appended at the end that reads and writes the model's output tensor."""
    schema = _schema()
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = _QUANTIZE, _QUANTIZE, 1
    model.operatorCodes.append(code)
    op = schema.OperatorT()
    op.opcodeIndex = len(model.operatorCodes) - 1
    out = model.subgraphs[0].outputs[0]
    op.inputs, op.outputs = [out], [out]
    model.subgraphs[0].operators.append(op)


def _two_op_cycle(model):
    """The fully connected layer reads the softmax's output, which the softmax computes from it: a cycle."""
    fc, softmax = _op(model, _FULLY_CONNECTED), _op(model, _SOFTMAX)
    fc.inputs[0] = softmax.outputs[0]


def _bias_shape(model):
    bias = model.subgraphs[0].tensors[_op(model, _FULLY_CONNECTED).inputs[2]]
    bias.shape = [int(bias.shape[0]) + 2]


def _truncate_weights(model):
    weights = _fc_weights(model)
    model.buffers[weights.buffer].data = model.buffers[weights.buffer].data[:5]


def _per_channel_wrong_length(model):
    conv = model.subgraphs[0].tensors[_op(model, _CONV_2D).inputs[1]]
    _set(conv, scale=list(conv.quantization.scale)[:-1], zeroPoint=list(conv.quantization.zeroPoint)[:-1])


def _quantized_dimension(model):
    conv = model.subgraphs[0].tensors[_op(model, _CONV_2D).inputs[1]]
    conv.quantization.quantizedDimension = 7


def _huge_input(model):
    _input(model).shape = [1, 60000, 60000, 3]


def _softmax_beta(value: float):
    def edit(model):
        _op(model, _SOFTMAX).builtinOptions.beta = value
    return edit


def _output_as_int8_zero_point_0(model):
    """grocery_int8: the uint8 output read as int8 with zero point 0 (scores saturate at 0.5)."""
    _output(model).type = _INT8


def _output_uint8_on_float_card(model):
    _output(model).type = _UINT8


def _buffer_outside(model):
    _fc_weights(model).buffer = len(model.buffers) + 3


def _opcode_outside(model):
    _op(model, _SOFTMAX).opcodeIndex = len(model.operatorCodes) + 1


def _tensor_outside(model):
    _op(model, _FULLY_CONNECTED).inputs[1] = len(model.subgraphs[0].tensors) + 7


def _output_outside(model):
    model.subgraphs[0].outputs = [len(model.subgraphs[0].tensors)]


def _op_output_minus_one(model):
    _op(model, _CONV_2D).outputs[0] = -1


def _no_operators(model):
    model.subgraphs[0].operators = []


def _no_buffers(model):
    model.buffers = []


def _no_subgraphs(model):
    model.subgraphs = []


def _external_buffer(model):
    weights = model.buffers[_fc_weights(model).buffer]
    weights.offset, weights.size = 1 << 40, 1 << 20


def _negative_dimension(model):
    _fc_weights(model).shape = [-3, int(_fc_weights(model).shape[1])]


def _scale(where: Callable, value: float):
    return lambda model: _set(where(model), scale=[value])


def _zero_point(where: Callable, value: int):
    return lambda model: _set(where(model), zeroPoint=[value])


def _all_scales(where: Callable, value: float):
    return lambda model: _set(where(model), scale=[value] * len(where(model).quantization.scale))


def _conv_weights(model):
    return model.subgraphs[0].tensors[_op(model, _CONV_2D).inputs[1]]


def _minus_one(builtin: int, position: int):
    def edit(model):
        _op(model, builtin).inputs[position] = -1
    return edit


# name -> (base model, edit, a word the error must contain besides the file name)
CRAFTED: dict[str, tuple[Path, Callable, str]] = {
    "input scale nan": (TINY, _scale(_input, math.nan), "scale"),
    "input scale inf": (TINY, _scale(_input, math.inf), "scale"),
    "input scale 0": (TINY, _scale(_input, 0.0), "scale"),
    "input scale negative": (TINY, _scale(_input, -1.0), "scale"),
    "input scale 1e-38": (TINY, _scale(_input, 1e-38), "scale"),
    "output scale nan": (TINY, _scale(_output, math.nan), "scale"),
    "output scale 0": (TINY, _scale(_output, 0.0), "scale"),
    "output scale 1e-38": (TINY, _scale(_output, 1e-38), "scale"),
    "grocery input scale 1e-38": (GROCERY_INT8, _scale(_input, 1e-38), "scale"),
    "grocery output zero point 1000 (uint8)": (GROCERY_INT8, _zero_point(_output, 1000), "zero point"),
    "input zero point 1000 (int8)": (TINY, _zero_point(_input, 1000), "zero point"),
    "dense weights scale 1e30": (TINY, _all_scales(_fc_weights, 1e30), "scale"),
    "grocery dense weights scale 1e30": (GROCERY_INT8, _all_scales(_fc_weights, 1e30), "scale"),
    "conv weights scale 1e30": (TINY, _all_scales(_conv_weights, 1e30), "scale"),
    "conv weights scale 1e-38": (TINY, _all_scales(_conv_weights, 1e-38), "scale"),
    "per-channel scales of the wrong length": (TINY, _per_channel_wrong_length, "scale"),
    "quantized dimension out of range": (TINY, _quantized_dimension, "dimension"),
    "dense weights index -1": (TINY, _minus_one(_FULLY_CONNECTED, 1), "-1"),
    "grocery dense weights index -1": (GROCERY_INT8, _minus_one(_FULLY_CONNECTED, 1), "-1"),
    "conv input index -1": (TINY, _minus_one(_CONV_2D, 0), "-1"),
    "conv output index -1": (TINY, _op_output_minus_one, "-1"),
    "dense weights tensor index out of range": (TINY, _tensor_outside, "tensor"),
    "model output index out of range": (TINY, _output_outside, "tensor"),
    "buffer index out of range": (TINY, _buffer_outside, "buffer"),
    "opcode index out of range": (TINY, _opcode_outside, "opcode"),
    "no subgraphs": (TINY, _no_subgraphs, "subgraph"),
    "grocery no subgraphs": (GROCERY_INT8, _no_subgraphs, "subgraph"),
    "no operators": (TINY, _no_operators, "operator"),
    "no buffers": (TINY, _no_buffers, "buffer"),
    "weights stored outside the file": (TINY, _external_buffer, "outside"),
    "truncated weights buffer": (TINY, _truncate_weights, "bytes"),
    "bias of the wrong shape": (TINY, _bias_shape, "bytes"),
    "negative dimension": (TINY, _negative_dimension, "shape"),
    "60000x60000 input": (TINY, _huge_input, "bytes"),
    "QUANTIZE reading its own output": (TINY, _add_quantize_reading_its_own_output, "operator"),
    "two operators in a cycle": (TINY, _two_op_cycle, "operator"),
    "softmax beta nan": (TINY, _softmax_beta(math.nan), "beta"),
    "softmax beta inf": (TINY, _softmax_beta(math.inf), "beta"),
    "grocery softmax beta inf": (GROCERY_INT8, _softmax_beta(math.inf), "beta"),
    "grocery uint8 output read as int8": (GROCERY_INT8, _output_as_int8_zero_point_0, "output"),
    "float16 card with a uint8 output": (GROCERY_FP16, _output_uint8_on_float_card, "output"),
}


def larger_input(size: int) -> bytes:
    """The tiny model with a ``size`` x ``size`` input, its card saying the same: the file
    declares small layers, but the kernels size every layer from the input."""
    from edgeshop.tflite.modelcard import CARD_ENTRY, attach_archive, split_archive

    flatbuffer, members = split_archive(edited(TINY, lambda model: setattr(_input(model), "shape", [1, size, size, 3])))
    card = json.loads(members[CARD_ENTRY])
    card["input"]["height"] = card["input"]["width"] = size
    return attach_archive(flatbuffer, {**members, CARD_ENTRY: json.dumps(card).encode()})


def quantization_edit(rng) -> Callable:
    """An edit of one or two random quantized tensors: every scale (or one channel's) times
    10^k for k in [-12, 12], a zero point moved to an edge of some type's range, or the
    tensor re-typed. Before the check, 48 of 300 such tiny models crashed the process."""
    def edit(model):
        tensors = [t for t in model.subgraphs[0].tensors
                   if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale)]
        for _ in range(rng.randint(1, 2)):
            tensor, roll = rng.choice(tensors), rng.random()
            q = tensor.quantization
            if roll < 0.6:
                factor = 10 ** rng.uniform(-12, 12)
                channels = range(len(q.scale)) if rng.random() < 0.5 else [rng.randrange(len(q.scale))]
                q.scale = [s * factor if i in channels else s for i, s in enumerate(q.scale)]
            elif roll < 0.9:
                points = list(q.zeroPoint)
                points[rng.randrange(len(points))] = rng.choice([-128, 127, 0, 255, -1, 1, 64, -64])
                q.zeroPoint = points
            else:
                tensor.type = rng.choice([_UINT8, _INT8, 7, 2, 0])  # uint8, int8, int16, int32, float32
    return edit


# Wrong only against the model's card, which the head readers do not read (the Classifier
# that enroll, calibrate and eval build next does).
CARD_ONLY = {"grocery uint8 output read as int8", "float16 card with a uint8 output"}


def shared_table_model(count: int, rank: int | None = None) -> bytes:
    """A valid-looking flatbuffer whose one subgraph lists ``count`` tensors that are all the
    same table, whose shape has ``rank`` (default ``count``) entries: ``count`` x ``rank``
    elements to read from ~4 x (``count`` + ``rank``) bytes."""
    import flatbuffers

    schema = _schema()
    rank = count if rank is None else rank
    builder = flatbuffers.Builder(8 * (count + rank) + 1024)
    schema.TensorStartShapeVector(builder, rank)
    for _ in range(rank):
        builder.PrependInt32(1)
    shape = builder.EndVector()
    schema.TensorStart(builder)
    schema.TensorAddShape(builder, shape)
    schema.TensorAddType(builder, _INT8)
    tensor = schema.TensorEnd(builder)
    schema.SubGraphStartTensorsVector(builder, count)
    for _ in range(count):
        builder.PrependUOffsetTRelative(tensor)
    tensors = builder.EndVector()
    schema.SubGraphStart(builder)
    schema.SubGraphAddTensors(builder, tensors)
    subgraph = schema.SubGraphEnd(builder)
    schema.ModelStartSubgraphsVector(builder, 1)
    builder.PrependUOffsetTRelative(subgraph)
    subgraphs = builder.EndVector()
    schema.BufferStart(builder)
    empty = schema.BufferEnd(builder)
    schema.ModelStartBuffersVector(builder, 1)
    builder.PrependUOffsetTRelative(empty)
    buffers = builder.EndVector()
    schema.ModelStart(builder)
    schema.ModelAddVersion(builder, 3)
    schema.ModelAddSubgraphs(builder, subgraphs)
    schema.ModelAddBuffers(builder, buffers)
    builder.Finish(schema.ModelEnd(builder), file_identifier=b"TFL3")
    from edgeshop.tflite.modelcard import split_archive

    members = split_archive(TINY.read_bytes())[1]
    from edgeshop.tflite.modelcard import attach_archive

    return attach_archive(bytes(builder.Output()), members)


def run_models(paths: list[Path], timeout: float = 60.0, *, head_only: bool = False) -> dict[str, dict]:
    """{path: outcome} for every model, each loaded in a child process; a child that crashes
    or hangs gives that model {"outcome": "crash", "returncode": ...} / {"outcome": "hang"}
    and the rest run in a new child. ``head_only``: only the head readers, no interpreter."""
    import os

    results: dict[str, dict] = {}
    pending = [str(p) for p in paths]
    import edgeshop

    # The children import the edgeshop the caller imported (a worktree's, or another copy's).
    env = {**os.environ, "PYTHONPATH": str(Path(edgeshop.__file__).resolve().parent.parent),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    while pending:
        try:
            child = subprocess.run([sys.executable, __file__, *(["--head"] if head_only else []), *pending],
                                   capture_output=True, text=True,
                                   cwd=REPO, timeout=timeout, env=env)
            stdout, stderr, returncode = child.stdout, child.stderr, child.returncode
        except subprocess.TimeoutExpired as exc:
            stdout, stderr, returncode = _text(exc.stdout), _text(exc.stderr), None
        started = None
        for line in stdout.splitlines():
            if line.startswith("START "):
                started = line[len("START "):]
            elif line.startswith("{"):
                record = json.loads(line)
                results[record["path"]] = record
                started = None
        if started is None and returncode != 0:  # died outside any model: report it on all left
            started = next((p for p in pending if p not in results), None)
        if started is not None:
            results[started] = {"path": started, "outcome": "hang" if returncode is None else "crash",
                                "returncode": returncode, "stderr": stderr[-400:]}
        pending = [p for p in pending if p not in results]
    return results


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def _load_everything(path: str) -> dict:
    """Everything the runtime does with a model file; {"outcome": "ok"|"error", ...}."""
    import numpy as np

    from edgeshop import Classifier
    from edgeshop.errors import EdgeshopError

    try:
        classifier = Classifier(path)
        spec = classifier.input_spec
        scores = classifier.scores(np.full((spec.height + 5, spec.width + 3, 3), 120, np.uint8))
        if not np.all(np.isfinite(scores)):
            return {"outcome": "bad scores", "scores": scores.tolist()}
        record = {"outcome": "ok", "top": float(scores.max())}
        from edgeshop.adapt.probe import HeadProbe
        from edgeshop.tflite.head_weights import read_head_weights
        from edgeshop.tflite.tflite_head import softmax_beta

        content = Path(path).read_bytes()
        try:
            softmax_beta(content, path)
            read_head_weights(content, path)
            HeadProbe(classifier).run(np.full((spec.height, spec.width, 3), 120, np.uint8))
        except EdgeshopError as exc:  # a model the classifier runs but whose head is not an edgeshop head
            record["head"] = str(exc)
        return record
    except EdgeshopError as exc:
        return {"outcome": "error", "type": type(exc).__name__, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - what escapes is the finding
        return {"outcome": "raw", "type": type(exc).__name__, "message": str(exc)[:300]}


def _read_head(path: str) -> dict:
    """What enroll, calibrate, eval and --reexport parse before any interpreter runs."""
    from edgeshop.errors import EdgeshopError
    from edgeshop.tflite.head_weights import read_head_weights
    from edgeshop.tflite.tflite_head import softmax_beta, with_head_outputs

    content = Path(path).read_bytes()
    try:
        softmax_beta(content, path)
        with_head_outputs(content, path)
        read_head_weights(content, path)
        return {"outcome": "ok"}
    except EdgeshopError as exc:
        return {"outcome": "error", "type": type(exc).__name__, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - what escapes is the finding
        return {"outcome": "raw", "type": type(exc).__name__, "message": str(exc)[:300]}


def main(arguments: list[str]) -> None:
    import warnings

    warnings.simplefilter("ignore")
    load = _read_head if arguments[:1] == ["--head"] else _load_everything
    for path in arguments[1:] if arguments[:1] == ["--head"] else arguments:
        print("START " + path, flush=True)
        print(json.dumps({"path": path, **load(path)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
