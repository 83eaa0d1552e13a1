"""The classifier head of a finished .tflite: find it, set its softmax temperature, expose its tensors.

Runtime side, no TensorFlow: the flatbuffer is read and written with the TFLite schema
module that ai-edge-litert ships (object API + the `flatbuffers` package), never by byte
offsets. Every rewrite keeps the whole archive (labels.txt, the card) and the standard
metadata buffer, which the object API carries through as it is.

The head is `... -> FULLY_CONNECTED -> SOFTMAX -> [QUANTIZE|DEQUANTIZE] -> output`:
- the SOFTMAX's input is the logits, the FULLY_CONNECTED's input the embedding;
- SOFTMAX computes softmax(beta * logits). Temperature scaling is beta = 1 / T, and the
  int8 kernel folds beta into its multiplier at Prepare, so a calibrated int8 model runs
  exactly as fast as the original and every client (MediaPipe included) sees the
  calibrated probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeshop.errors import ModelLoadError
from edgeshop.tflite.model_check import check_model
from edgeshop.tflite.modelcard import attach_archive, split_archive

_SOFTMAX, _FULLY_CONNECTED, _QUANTIZE, _DEQUANTIZE = 25, 9, 114, 6  # tflite::BuiltinOperator
_PASS_THROUGH = (_QUANTIZE, _DEQUANTIZE)  # type changes between the softmax and the model output


def _schema():
    # ai-edge-litert ships the TFLite schema; the runtime never reaches for TensorFlow's copy.
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        raise ModelLoadError("editing a .tflite needs the TFLite schema of ai-edge-litert: "
                             "pip install ai-edge-litert") from None
    return schema_py_generated


def read_model(content: bytes, source: str = "model") -> Any:
    """The flatbuffer of a model file (archive ignored) as the schema's object tree (ModelT)."""
    schema = _schema()
    flatbuffer = split_archive(content, source)[0]
    # Checked first: the object API unpacks every table it is pointed at, however often
    # (a 40 KB file took minutes and GBs), and a crafted graph can make the walks below loop.
    check_model(flatbuffer, source)
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    except Exception as exc:  # noqa: BLE001 - a damaged flatbuffer raises anything from struct to IndexError
        raise ModelLoadError(f"{source}: not a readable TFLite flatbuffer ({type(exc).__name__}: {exc})") from None
    return model


def write_model(model: Any, original: bytes) -> bytes:
    """``model`` serialised, followed by the whole archive of ``original`` (card, labels, anything else)."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    members = split_archive(original)[1]
    rewritten = bytes(builder.Output())
    return attach_archive(rewritten, members) if members else rewritten


def _builtin(model: Any, op: Any) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


@dataclass(frozen=True)
class Head:
    """Where the classifier head is in subgraph 0 (operator and tensor indices)."""

    softmax_op: int
    logits: int  # tensor index: the softmax's input
    embedding: int | None  # tensor index: the input of the layer producing the logits (None: not a dense layer)
    beta: float


def find_head(model: Any, source: str = "model") -> Head:
    """The SOFTMAX that produces the model's output (through QUANTIZE/DEQUANTIZE ops only)."""
    subgraph = model.subgraphs[0]
    producer = {int(t): i for i, op in enumerate(subgraph.operators) for t in op.outputs}
    if len(subgraph.outputs) != 1:
        raise ModelLoadError(f"{source}: has {len(subgraph.outputs)} outputs; an edgeshop classifier has one")
    tensor = int(subgraph.outputs[0])
    visited = set()  # check_model orders operators, so this walk ends anyway; never loop on a graph
    while tensor in producer and producer[tensor] not in visited:
        index = producer[tensor]
        visited.add(index)
        op = subgraph.operators[index]
        builtin = _builtin(model, op)
        if builtin == _SOFTMAX:
            logits = int(op.inputs[0])
            before = producer.get(logits)
            embedding = None
            if before is not None and _builtin(model, subgraph.operators[before]) == _FULLY_CONNECTED:
                embedding = int(subgraph.operators[before].inputs[0])
            beta = float(op.builtinOptions.beta) if op.builtinOptions is not None else 1.0
            return Head(index, logits, embedding, beta)
        if builtin not in _PASS_THROUGH:
            break
        tensor = int(op.inputs[0])
    raise ModelLoadError(f"{source}: its output is not produced by a SOFTMAX layer, so it has no temperature "
                         "to calibrate; export an edgeshop classifier with edgeshop-export")


def softmax_beta(content: bytes, source: str = "model") -> float:
    """The beta of the output softmax (1.0 = uncalibrated; temperature T = 1 / beta)."""
    return find_head(read_model(content, source), source).beta


def with_softmax_beta(content: bytes, beta: float, source: str = "model") -> bytes:
    """``content`` with its output softmax computing softmax(beta * logits); archive and metadata kept."""
    if not 0.0 < beta < 1e3:
        raise ValueError(f"softmax beta must be in (0, 1000), got {beta}")
    schema = _schema()
    model = read_model(content, source)
    head = find_head(model, source)
    op = model.subgraphs[0].operators[head.softmax_op]
    if op.builtinOptions is None:
        op.builtinOptionsType = schema.BuiltinOptions.SoftmaxOptions
        op.builtinOptions = schema.SoftmaxOptionsT()
    op.builtinOptions.beta = float(beta)
    return write_model(model, content)


def with_head_outputs(content: bytes, source: str = "model") -> tuple[bytes, dict[str, int]]:
    """A probe copy of the model whose outputs are the scores, the logits and (when found) the
    embedding; returns it and {name: tensor index}.

    The graph is unchanged; the head's tensors only become outputs, so an interpreter
    (and its delegates) keeps them. For evaluation and calibration, never to ship.
    """
    model = read_model(content, source)
    head = find_head(model, source)
    subgraph = model.subgraphs[0]
    tensors = {"scores": int(subgraph.outputs[0]), "logits": head.logits}
    if head.embedding is not None:
        tensors["embedding"] = head.embedding
    subgraph.outputs = list(tensors.values())
    model.signatureDefs = []  # the signature names one output; interpreters then fall back to the subgraph's
    return write_model(model, content), tensors
