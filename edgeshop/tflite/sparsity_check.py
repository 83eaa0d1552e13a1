"""Check the sparse storage of a TFLite constant (tf.lite.Optimize.EXPERIMENTAL_SPARSITY).

A sparse tensor lists its dimensions in a traversal order, each either dense (a size) or
compressed (CSR: segment boundaries and indices); LiteRT's format converter follows those
arrays without checking them. Here they are walked the way the converter walks them, and
the number of values they address must be what the buffer holds.
"""

from __future__ import annotations

import math

import numpy as np

from edgeshop.tflite.flatbuffer_reader import FlatbufferError, Table

_DENSE, _SPARSE_CSR = 0, 1  # tflite::DimensionType
_INDEX_TYPES = {1: "<i4", 2: "<u2", 3: "<u1"}  # tflite::SparseIndexVector: Int32Vector, Uint16Vector, Uint8Vector
MAX_DIMENSIONS = 16


def stored_values(sparsity: Table, shape: tuple[int, ...], what: str) -> int:
    """How many values the sparse tensor of ``shape`` stores; a ``FlatbufferError`` saying what
    is wrong when its sparsity parameters do not describe ``shape``."""
    rank = len(shape)
    order = _ints(sparsity.numbers(0, "<i4", f"{what}'s traversal order", MAX_DIMENSIONS))
    blocks = _ints(sparsity.numbers(1, "<i4", f"{what}'s block map", MAX_DIMENSIONS))
    dims = sparsity.tables(2, f"{what}'s dimension metadata", MAX_DIMENSIONS) or []
    if sorted(order) != list(range(rank + len(blocks))) or len(dims) != len(order):
        raise FlatbufferError(f"{what}'s sparse traversal order {order} does not list its {rank} dimensions "
                              f"and {len(blocks)} blocks once each")
    if any(not 0 <= b < rank for b in blocks) or len(set(blocks)) != len(blocks):
        raise FlatbufferError(f"{what}'s sparse block map {blocks} names dimensions it does not have")
    # The size of every dimension in storage: blocked dimensions are divided by their block size.
    block_sizes = [int(dims[order.index(rank + i)].scalar(1, "i", 0)) for i in range(len(blocks))]
    sizes = list(shape) + block_sizes
    for i, dim in enumerate(blocks):
        if block_sizes[i] < 1 or shape[dim] % block_sizes[i]:
            raise FlatbufferError(f"{what}'s sparse block size {block_sizes[i]} does not divide dimension {dim}")
        sizes[dim] = shape[dim] // block_sizes[i]
    count = 1  # rows addressed so far, in traversal order
    for level, table in enumerate(dims):
        size = sizes[order[level]]
        kind = int(table.scalar(0, "b", 0))
        if kind == _DENSE:
            if int(table.scalar(1, "i", 0)) != size:
                raise FlatbufferError(f"{what}'s sparse dimension {level} says {table.scalar(1, 'i', 0)} values, "
                                      f"its shape {size}")
            count *= size
        elif kind == _SPARSE_CSR:
            segments = _index_vector(table, 2, f"{what}'s sparse segments")
            indices = _index_vector(table, 4, f"{what}'s sparse indices")
            if (len(segments) != count + 1 or segments[0] != 0 or np.any(np.diff(segments) < 0)
                    or segments[-1] != len(indices) or (len(indices) and (indices.min() < 0 or indices.max() >= size))):
                raise FlatbufferError(f"{what}'s sparse dimension {level} has segments or indices that do not fit "
                                      f"its {count} rows of {size}")
            count = len(indices)
        else:
            raise FlatbufferError(f"{what}'s sparse dimension {level} has unknown format {kind}")
        if count > math.prod(sizes):
            raise FlatbufferError(f"{what}'s sparse storage addresses more values than its shape holds")
    return count


def _ints(values: np.ndarray | None) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _index_vector(table: Table, type_field: int, what: str) -> np.ndarray:
    dtype = _INDEX_TYPES.get(int(table.scalar(type_field, "B", 0)))
    vector = table.table(type_field + 1, what) if dtype is not None else None
    values = None if vector is None else vector.numbers(0, dtype, what)
    if values is None:
        raise FlatbufferError(f"{what} are missing")
    return values.astype(np.int64)
