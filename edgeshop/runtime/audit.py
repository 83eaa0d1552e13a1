"""Read a .tflite back and say whether it is fully integer, and what its I/O expects."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from edgeshop.runtime.backend import plain_interpreter
from edgeshop.runtime.quantization import tensor_quantization

INTEGER_DTYPES = {"int8", "uint8", "int16", "int32", "int64", "bool"}
# Ops that only move or reinterpret data; their float-ness follows their tensors.
_DELEGATE_OPS = {"DELEGATE"}


def _io(details: dict) -> dict[str, Any]:
    q = tensor_quantization(details)
    return {"dtype": q.dtype, "shape": [int(s) for s in details["shape"]], "scale": q.scale,
            "zero_point": q.zero_point}


def audit_model(model_content: bytes, backend: str = "auto", source: str = "model") -> dict[str, Any]:
    """Input/output dtypes with scale/zero-point, float tensors and ops, op counts."""
    interpreter = plain_interpreter(model_content, backend, source)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}

    def dtype_of(index: int) -> str:
        return np.dtype(tensors[index]["dtype"]).name if index in tensors else "unknown"

    float_tensors = sorted(
        {t["name"] for t in tensors.values() if np.dtype(t["dtype"]).name not in INTEGER_DTYPES}
    )
    ops = interpreter._get_ops_details()  # noqa: SLF001 - the only op listing the Python API has
    op_counts = Counter(op["op_name"] for op in ops)
    float_ops = []
    for op in ops:
        if op["op_name"] in _DELEGATE_OPS:
            continue
        used = [i for i in list(op["inputs"]) + list(op["outputs"]) if i >= 0]
        if any(dtype_of(i) not in INTEGER_DTYPES for i in used):
            float_ops.append(op["op_name"])
    sparsity = _weight_sparsity(interpreter, ops, tensors)
    inp = _io(interpreter.get_input_details()[0])
    out = _io(interpreter.get_output_details()[0])
    return {
        "input": inp,
        "output": out,
        "float_tensors": float_tensors,
        "float_ops": sorted(Counter(float_ops).items()),
        "op_counts": dict(sorted(op_counts.items())),
        "weight_sparsity": sparsity,
        "fully_integer": not float_tensors and not float_ops and inp["dtype"] in ("int8", "uint8")
        and out["dtype"] in ("int8", "uint8"),
    }


_WEIGHTED_OPS = {"CONV_2D", "FULLY_CONNECTED"}  # the layers edgeshop prunes


def _weight_sparsity(interpreter, ops: list[dict], tensors: dict[int, dict]) -> float | None:
    """Fraction of exact zeros in the constant weights of CONV_2D / FULLY_CONNECTED ops.

    Read from the file itself, so it shows whether pruned zeros survived QAT and
    conversion (int8 weights are symmetric: a zero weight is a zero integer).
    """
    zeros = total = 0
    # float16 models feed weights through DEQUANTIZE: look through it to the constant
    dequantized_from = {int(op["outputs"][0]): int(op["inputs"][0]) for op in ops if op["op_name"] == "DEQUANTIZE"}
    for op in ops:
        if op["op_name"] not in _WEIGHTED_OPS or len(op["inputs"]) < 2:
            continue
        index = int(op["inputs"][1])
        index = dequantized_from.get(index, index)
        try:
            weights = interpreter.get_tensor(index)
        except ValueError:  # not a constant
            continue
        if index in tensors and weights.size:
            zeros += int(np.count_nonzero(weights == 0))
            total += weights.size
    return zeros / total if total else None


def format_audit(audit: dict[str, Any], list_float: bool = True) -> str:
    """Human-readable audit summary for the CLI."""
    lines = []
    for name in ("input", "output"):
        t = audit[name]
        lines.append(
            f"  {name:6s} {t['dtype']:7s} shape {t['shape']} scale {t['scale']:.6g} zero_point {t['zero_point']}"
        )
    lines.append(f"  ops: {', '.join(f'{k} x{v}' for k, v in audit['op_counts'].items())}")
    if audit.get("weight_sparsity") is not None:
        lines.append(f"  conv/dense weight sparsity: {audit['weight_sparsity']:.3f}")
    if audit["fully_integer"]:
        lines.append("  fully integer: yes (every tensor and op is integer)")
    elif not list_float:
        lines.append("  fully integer: no (float model)")
    else:
        lines.append(f"  fully integer: NO; {len(audit['float_tensors'])} float tensor(s), float ops: "
                     + (", ".join(f"{k} x{v}" for k, v in audit["float_ops"]) or "none"))
        if list_float:
            lines.extend(f"    float tensor: {name}" for name in audit["float_tensors"][:10])
    return "\n".join(lines)
