"""Check a .tflite file before an interpreter (or edgeshop's own head readers) sees it.

LiteRT trusts what a model declares: its XNNPACK delegate crashes the process (segfault,
double free) on a quantization scale it cannot represent, a weights index of -1 or a
scale ratio its kernels do not support, and graph walks over a crafted graph never end.
Here the flatbuffer is read with a bounded reader (`flatbuffer_reader`) and every index,
size, quantization parameter and operator order is checked against what a converter
writes; any failure is one ``ModelLoadError`` naming the file and the tensor or operator.
What is checked, and why, is listed in docs/hardening-model-files.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgeshop.errors import ModelLoadError
from edgeshop.tflite.flatbuffer_reader import FlatbufferError, Reader, Table
from edgeshop.tflite.sparsity_check import stored_values

TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier at bytes 4..8
# Bits per element of each tflite::TensorType; None: variable-size (strings, resources).
_BITS = {0: 32, 1: 16, 2: 32, 3: 8, 4: 64, 5: None, 6: 8, 7: 16, 8: 64, 9: 8, 10: 64, 11: 128, 12: 64,
         13: None, 14: None, 15: 32, 16: 16, 17: 4, 18: 16, 19: 2, 20: 4, 21: 8, 22: 8}
_INTEGER_RANGE = {3: (0, 255), 9: (-128, 127), 7: (-32768, 32767), 2: (-2**31, 2**31 - 1), 16: (0, 65535),
                  17: (-8, 7), 20: (0, 15), 19: (-2, 1)}
_ANY_ZERO_POINT = (-2**31, 2**31 - 1)
_QUANTIZED_ACTIVATIONS = (3, 9, 7)  # UINT8, INT8, INT16: what quantized kernels rescale
_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8"}

# Scales of real models lie far inside these (edgeshop's: 3e-10 .. 1.6); the ends are where
# float32 arithmetic in the kernels goes denormal or overflows.
MIN_SCALE, MAX_SCALE = 1e-20, 1e6
# What the interpreter may allocate for the tensors it computes (not the weights, which the
# file size bounds): the runtime's promise is under 300 MB for any model.
MAX_ACTIVATION_BYTES = 128 << 20
MAX_SOFTMAX_BETA = 1e3
# Counts far beyond any image classifier (edgeshop's: 169 tensors, 65 operators), checked before
# anything is built for them: a file can list millions of entries that are all one small table.
MAX_TENSORS = MAX_OPERATORS = 1 << 16
MAX_SUBGRAPHS = MAX_BUFFERS = MAX_OPERATOR_CODES = 1 << 12
MAX_OPERANDS = 1 << 12  # inputs or outputs of one operator or graph
MAX_RANK = 16

# tflite::BuiltinOperator codes that need rules of their own.
ADD, AVERAGE_POOL_2D, CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, MUL, SOFTMAX = 0, 1, 3, 4, 9, 18, 25
MEAN, SUB, TRANSPOSE_CONV, SUM, LEAKY_RELU, QUANTIZE, HARD_SWISH, CUSTOM = 40, 41, 67, 74, 98, 114, 117, 32
_SOFTMAX_OPTIONS = 9  # tflite::BuiltinOptions
# (input, weights) positions of the layers whose output is input x weights, and the inputs
# that may be -1 (absent): only the bias. Recurrent layers have many optional inputs.
_WEIGHTED = {CONV_2D: (0, 1), DEPTHWISE_CONV_2D: (0, 1), FULLY_CONNECTED: (0, 1), TRANSPOSE_CONV: (2, 1)}
_OPTIONAL_INPUTS = {CONV_2D: {2}, DEPTHWISE_CONV_2D: {2}, FULLY_CONNECTED: {2}, TRANSPOSE_CONV: {3}}
_RECURRENT = {16, 24, 27, 35, 44, 46, 52}  # LSTM, RNN, SVDF and their sequence forms
# Ranges of the scale ratios XNNPACK's quantized kernels accept; outside them its delegate
# fails to build and (in ai-edge-litert 2.x) frees memory twice instead of falling back.
_WEIGHTED_RATIO = (2.0 ** -32, 2.0 ** 8)  # input x weights / output, per output channel
_ADD_RATIO = (2.0 ** -10, 2.0 ** 8)  # each input / output
_MUL_RATIO = (2.0 ** -16, 2.0 ** 8)  # input1 x input2 / output
_RESCALE_RATIO = (2.0 ** -8, 2.0 ** 8)  # input / output of one-input ops that requantize
_RESCALING = {MEAN, SUM, AVERAGE_POOL_2D, QUANTIZE, HARD_SWISH, LEAKY_RELU}


@dataclass(frozen=True)
class Quantization:
    scales: np.ndarray  # float64, one per channel (or one)
    zero_points: np.ndarray  # int64, same length
    axis: int


@dataclass(frozen=True)
class Tensor:
    name: str
    type: int
    shape: tuple[int, ...]
    buffer: int
    quantization: Quantization | None
    constant: bool  # its buffer holds data
    variable: bool = False  # state an operator keeps between runs (read before it is written)

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES.get(self.type, f"type {self.type}")


@dataclass(frozen=True)
class Operator:
    builtin: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class Graph:
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def check_model(content: bytes, source: str = "model") -> tuple[Graph, ...]:
    """The subgraphs of the TFLite model ``content`` (archive bytes after it allowed), each
    checked; anything an interpreter could crash or loop on is a ``ModelLoadError``."""
    if len(content) < 8 or content[4:8] != TFLITE_IDENTIFIER:
        raise ModelLoadError(f"{source}: not a TFLite model (no 'TFL3' identifier); "
                             "pass a .tflite file written by edgeshop-export")
    # A file whose objects are never shared reads fewer tables and elements than it has bytes.
    reader = Reader(content, budget=len(content) + 4096)
    try:
        return _Checker(reader, source).model()
    except FlatbufferError as exc:
        raise ModelLoadError(f"{source}: not a well-formed TFLite model ({exc}); {_FIX}") from None


_FIX = "re-export it with edgeshop-export, or copy it again"


class _Checker:
    def __init__(self, reader: Reader, source: str) -> None:
        self.reader, self.source = reader, source

    def refuse(self, problem: str) -> ModelLoadError:
        return ModelLoadError(f"{self.source}: {problem}; {_FIX}")

    def model(self) -> tuple[Graph, ...]:
        root = self.reader.root()
        self.builtins = [self._builtin(code) for code in root.tables(1, "operator code", MAX_OPERATOR_CODES) or []]
        buffers = root.tables(4, "buffer", MAX_BUFFERS) or []
        self.buffer_bytes = []
        for index, buffer in enumerate(buffers):
            if buffer.scalar(1, "Q", 0) or buffer.scalar(2, "Q", 0):
                raise self.refuse(f"buffer {index} stores its data outside the flatbuffer (a >2 GB model layout); "
                                  "edgeshop reads models stored in one piece")
            self.buffer_bytes.append(buffer.vector_length(0, 1, f"buffer {index}") or 0)
        subgraphs = root.tables(2, "subgraph", MAX_SUBGRAPHS) or []
        if not subgraphs:
            raise self.refuse("has no subgraph (no graph to run)")
        for index, metadata in enumerate(root.tables(6, "metadata", MAX_BUFFERS) or []):
            metadata.string(0, f"metadata {index}'s name")
            self._index(metadata.scalar(1, "I", 0), len(buffers), f"metadata {index}'s buffer")
        graphs = tuple(self._graph(subgraph, s) for s, subgraph in enumerate(subgraphs))
        for index, signature in enumerate(root.tables(7, "signature", MAX_SUBGRAPHS) or []):
            graph = graphs[self._index(signature.scalar(4, "I", 0), len(graphs), f"signature {index}'s subgraph")]
            signature.string(2, f"signature {index}'s key")
            for field in (0, 1):
                for entry in signature.tables(field, f"signature {index}'s tensor", MAX_OPERANDS) or []:
                    entry.string(0, f"signature {index}'s tensor name")
                    self._index(entry.scalar(1, "I", 0), len(graph.tensors), f"signature {index}'s tensor")
        return graphs

    def _builtin(self, code: Table) -> int:
        if code.string(1, "custom operator name") is not None:
            return CUSTOM
        return max(int(code.scalar(0, "b", 0)), int(code.scalar(3, "i", 0)))

    def _index(self, value: int, count: int, what: str) -> int:
        if not 0 <= int(value) < count:
            raise self.refuse(f"{what} index {int(value)} is out of range (there are {count})")
        return int(value)

    def _graph(self, subgraph: Table, s: int) -> Graph:
        where = f"subgraph {s}" if s else "the graph"
        tensors = tuple(self._tensor(t, i) for i, t in enumerate(subgraph.tables(0, "tensor", MAX_TENSORS) or []))
        activation_bytes = sum(self._bytes(t) or 0 for t in tensors if not t.constant)
        if activation_bytes > MAX_ACTIVATION_BYTES:
            raise self.refuse(f"{where}'s tensors need {activation_bytes} bytes of memory (at most "
                              f"{MAX_ACTIVATION_BYTES} are allowed)")
        ends = {}
        for field, name in ((1, "input"), (2, "output")):
            values = subgraph.numbers(field, "<i4", f"{where}'s {name}s", MAX_OPERANDS)
            ends[name] = tuple(self._index(v, len(tensors), f"{where}'s {name} tensor")
                               for v in (() if values is None else values))
        operators = tuple(self._operator(op, i, tensors)
                          for i, op in enumerate(subgraph.tables(3, "operator", MAX_OPERATORS) or []))
        self._order(operators, tensors, ends["input"], ends["output"], where)
        for index in ends["input"]:
            if tensors[index].constant:
                raise self.refuse(f"input tensor {index} ('{tensors[index].name}') is a constant")
        graph = Graph(tensors, operators, ends["input"], ends["output"])
        for i, op in enumerate(operators):
            self._ratios(op, i, tensors)
        return graph

    def _tensor(self, table: Table, index: int) -> Tensor:
        name = table.string(3, f"tensor {index}'s name") or ""
        what = f"tensor {index} ('{name}')"
        kind = int(table.scalar(1, "b", 0))
        if kind not in _BITS:
            raise self.refuse(f"{what} has unknown type {kind}")
        shape_values = table.numbers(0, "<i4", f"{what}'s shape", MAX_RANK)
        shape = () if shape_values is None else tuple(int(d) for d in shape_values)
        if any(d < 0 for d in shape):
            raise self.refuse(f"{what} has a negative dimension in its shape {list(shape)}")
        buffer = self._index(table.scalar(2, "I", 0), len(self.buffer_bytes), f"{what}'s buffer")
        stored = self.buffer_bytes[buffer]
        quant_table = table.table(4, f"{what}'s quantization")
        quantization = None if quant_table is None else self._quantization(quant_table, kind, shape, what)
        tensor = Tensor(name, kind, shape, buffer, quantization, stored > 0, bool(table.scalar(5, "?", False)))
        needed = self._bytes(tensor)
        sparsity = table.table(6, f"{what}'s sparsity")
        if sparsity is not None:  # weights stored compressed (tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
            if not stored or needed is None:
                raise self.refuse(f"{what} has sparse storage but no constant values of a fixed size")
            needed = stored_values(sparsity, shape, what) * _BITS[kind] // 8
        if stored and needed is not None and stored != needed:
            raise self.refuse(f"{what} of shape {list(shape)} needs {needed} bytes but its buffer {buffer} "
                              f"holds {stored} bytes")
        return tensor

    def _bytes(self, tensor: Tensor) -> int | None:
        bits = _BITS[tensor.type]
        return None if bits is None else (math.prod(tensor.shape) * bits + 7) // 8

    def _quantization(self, table: Table, kind: int, shape: tuple[int, ...], what: str) -> Quantization | None:
        scales = table.numbers(2, "<f4", f"{what}'s scales", per_unit=64)
        zero_points = table.numbers(3, "<i8", f"{what}'s zero points", per_unit=64)
        if scales is None or not len(scales):
            return None
        if zero_points is None or len(zero_points) != len(scales):
            raise self.refuse(f"{what} has {len(scales)} quantization scales but "
                              f"{0 if zero_points is None else len(zero_points)} zero points")
        scales = scales.astype(np.float64)
        bad = ~(np.isfinite(scales) & (scales >= MIN_SCALE) & (scales <= MAX_SCALE))
        if bad.any():
            raise self.refuse(f"{what} has quantization scale {float(scales[bad][0]):g} (a scale must be a finite "
                              f"number in [{MIN_SCALE:g}, {MAX_SCALE:g}])")
        low, high = _INTEGER_RANGE.get(kind, _ANY_ZERO_POINT)
        bad = (zero_points < low) | (zero_points > high)
        if bad.any():
            raise self.refuse(f"{what} has zero point {int(zero_points[bad][0])}, outside the range of its "
                              f"{_TYPE_NAMES.get(kind, f'type {kind}')} values [{low}, {high}]")
        axis = int(table.scalar(6, "i", 0))
        if len(scales) > 1:
            if not 0 <= axis < len(shape):
                raise self.refuse(f"{what} is quantized along dimension {axis}, which its shape {list(shape)} "
                                  "does not have")
            if shape[axis] != len(scales):
                raise self.refuse(f"{what} has {len(scales)} per-channel quantization scales for the "
                                  f"{shape[axis]} channels of dimension {axis}")
        return Quantization(scales, zero_points.astype(np.int64), axis)

    def _operator(self, table: Table, index: int, tensors: tuple[Tensor, ...]) -> Operator:
        opcode = self._index(table.scalar(0, "I", 0), len(self.builtins), f"operator {index}'s opcode")
        builtin = self.builtins[opcode]
        what = f"operator {index} (builtin {builtin})"
        values = {}
        for field, name in ((1, "inputs"), (2, "outputs"), (8, "intermediates")):
            array = table.numbers(field, "<i4", f"{what}'s {name}", MAX_OPERANDS)
            values[name] = () if array is None else tuple(int(v) for v in array)
        for position, tensor in enumerate(values["inputs"]):
            if tensor == -1 and (position in _OPTIONAL_INPUTS.get(builtin, ()) or
                                 (builtin in _RECURRENT and position > 0)):
                continue
            if tensor == -1:
                raise self.refuse(f"{what} has input {position} = -1 (absent), which it needs")
            self._index(tensor, len(tensors), f"{what}'s input {position} tensor")
        for tensor in values["outputs"] + values["intermediates"]:
            self._index(tensor, len(tensors), f"{what}'s output tensor")
        if builtin == SOFTMAX:
            beta = None
            if table.scalar(3, "B", 0) == _SOFTMAX_OPTIONS:
                options = table.table(4, f"{what}'s options")
                beta = None if options is None else float(options.scalar(0, "f", 0.0))
            if beta is None or not (math.isfinite(beta) and 0 < beta < MAX_SOFTMAX_BETA):
                raise self.refuse(f"{what} (SOFTMAX) has beta {beta} (it must be a finite number in "
                                  f"(0, {MAX_SOFTMAX_BETA:g}))")
        if builtin in _WEIGHTED:
            weights = values["inputs"][_WEIGHTED[builtin][1]] if len(values["inputs"]) > 1 else -1
            q = tensors[weights].quantization if weights >= 0 else None
            if q is not None and tensors[weights].type == 9 and np.any(q.zero_points != 0):
                raise self.refuse(f"{what}'s int8 weights (tensor {weights}) have a non-zero zero point")
        return Operator(builtin, values["inputs"], values["outputs"])

    def _order(self, operators: tuple[Operator, ...], tensors: tuple[Tensor, ...], inputs: tuple[int, ...],
               outputs: tuple[int, ...], where: str) -> None:
        """Operators run in file order: each tensor is written once, by an operator before every
        reader (no cycles, so walks back from the output end), never into a constant."""
        producer: dict[int, int] = {}
        for i, op in enumerate(operators):
            for t in op.outputs:
                if t in producer:
                    raise self.refuse(f"tensor {t} is written by operators {producer[t]} and {i}")
                if tensors[t].constant:
                    raise self.refuse(f"operator {i} writes into constant tensor {t} ('{tensors[t].name}')")
                producer[t] = i
        for i, op in enumerate(operators):
            for t in op.inputs:
                if t >= 0 and producer.get(t, -1) >= i:
                    raise self.refuse(f"operator {i} reads tensor {t} ('{tensors[t].name}'), which operator "
                                      f"{producer[t]} writes (only earlier operators' outputs can be read)")
                if t >= 0 and t not in producer and t not in inputs and not tensors[t].constant \
                        and not tensors[t].variable:
                    raise self.refuse(f"operator {i} reads tensor {t} ('{tensors[t].name}'), which is neither an "
                                      "input, a constant nor any operator's output")
        for t in outputs:
            if t not in producer and t not in inputs and not tensors[t].constant:
                raise self.refuse(f"{where}'s output tensor {t} ('{tensors[t].name}') is computed by no operator")

    def _ratios(self, op: Operator, index: int, tensors: tuple[Tensor, ...]) -> None:
        """Scale ratios of quantized operators, within what the kernels accept (see _WEIGHTED_RATIO)."""
        def scale(position: int, side: tuple[int, ...]) -> np.ndarray | None:
            if position >= len(side) or side[position] < 0:
                return None
            tensor = tensors[side[position]]
            if tensor.type not in _QUANTIZED_ACTIVATIONS or tensor.quantization is None:
                return None
            return tensor.quantization.scales

        out = scale(0, op.outputs)
        if out is None:
            return
        checks = []
        if op.builtin in _WEIGHTED:
            x_at, w_at = _WEIGHTED[op.builtin]
            x, w = scale(x_at, op.inputs), scale(w_at, op.inputs)
            if x is not None and w is not None:
                checks.append(("input x weights / output", x[0] * w / out[0], _WEIGHTED_RATIO))
        elif op.builtin in (ADD, SUB):
            checks += [(f"input {i} / output", s[0] / out[0], _ADD_RATIO)
                       for i in (0, 1) if (s := scale(i, op.inputs)) is not None]
        elif op.builtin == MUL:
            a, b = scale(0, op.inputs), scale(1, op.inputs)
            if a is not None and b is not None:
                checks.append(("input 0 x input 1 / output", a[0] * b[0] / out[0], _MUL_RATIO))
        elif op.builtin in _RESCALING and (x := scale(0, op.inputs)) is not None:
            checks.append(("input / output", x[0] / out[0], _RESCALE_RATIO))
        for name, ratio, (low, high) in checks:
            ratio = np.atleast_1d(ratio)
            bad = ~((ratio >= low) & (ratio < high))
            if bad.any():
                raise self.refuse(f"operator {index} (builtin {op.builtin}) has a quantization scale ratio "
                                  f"{name} of {float(ratio[bad][0]):.3g}, outside [{low:.3g}, {high:.3g}) "
                                  f"(tensor {op.outputs[0]} '{tensors[op.outputs[0]].name}' and its inputs)")


def check_outputs_fit_card(graph: Graph, export_format: str | None, source: str = "model") -> None:
    """The graph's one output holds probabilities as an edgeshop card promises: float32, or
    uint8/int8 whose quantization maps its range onto [0, 1] (scale 1/256, zero point the
    type's minimum: what a softmax writes); and, when the card records the export format,
    the type that format has (int8: uint8/int8; float formats: float32). A uint8 output
    re-typed int8 would otherwise halve every score without an error."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ModelLoadError(f"{source}: expected one input and one output tensor, got {len(graph.inputs)} "
                             f"and {len(graph.outputs)}; {_FIX}")
    output = graph.tensors[graph.outputs[0]]
    what = f"its output tensor {graph.outputs[0]} ('{output.name}')"
    expected = {"int8": ("uint8", "int8")}.get(export_format or "", ("float32",) if export_format else None)
    if output.type_name not in (expected or ("float32", "uint8", "int8")):
        raise ModelLoadError(f"{source}: {what} is {output.type_name}, but "
                             + (f"its card says a {export_format} export, whose output is {' or '.join(expected)}"
                                if expected else "a classifier's scores are float32, uint8 or int8") + f"; {_FIX}")
    if output.type_name in ("uint8", "int8"):
        q = output.quantization
        low = _INTEGER_RANGE[output.type][0]
        if q is None or len(q.scales) != 1 or abs(q.scales[0] * 256 - 1) > 1e-3 or int(q.zero_points[0]) != low:
            found = "none" if q is None else f"scale {float(q.scales[0]):g}, zero point {int(q.zero_points[0])}"
            raise ModelLoadError(f"{source}: {what} has quantization {found}, which does not map its "
                                 f"{output.type_name} values onto probabilities in [0, 1] (scale 1/256, zero point "
                                 f"{low}); {_FIX}")
