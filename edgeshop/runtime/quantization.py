"""The quantization of an interpreter's tensors and the float values of 8-bit outputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorQuantization:
    dtype: str
    scale: float
    zero_point: int


def dequantize(raw: np.ndarray, q: TensorQuantization) -> np.ndarray:
    """Float32 values of a quantized tensor: (raw - zero_point) * scale."""
    return ((raw.astype(np.float32) - q.zero_point) * q.scale).astype(np.float32)


def dequantize_table(q: TensorQuantization) -> np.ndarray | None:
    """For an 8-bit output, ``dequantize`` of all 256 values indexed by their bit pattern (one
    lookup per call instead of four array passes, same float32 values); None for other dtypes."""
    if q.dtype not in ("uint8", "int8"):
        return None
    return dequantize(np.arange(256, dtype=np.uint8).view(q.dtype), q)


def tensor_quantization(details: dict) -> TensorQuantization:
    """dtype, scale and zero point of an interpreter's tensor details (the audit reads them too)."""
    scale, zero_point = details.get("quantization", (0.0, 0))
    return TensorQuantization(np.dtype(details["dtype"]).name, float(scale), int(zero_point))
