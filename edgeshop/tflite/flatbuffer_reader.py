"""A bounded reader of flatbuffer tables and vectors, for bytes nobody has vouched for.

Every offset is checked against the buffer before it is followed, and every table visited
and vector element read is counted against a budget: the file's size (a file whose tables
all point at one shared table, K tables read K times each from a few KB, runs out in
microseconds instead of unpacking K^2 objects), and at most MAX_UNITS in all, since each
unit may become a Python object (memory stays bounded for any file). Nothing is
unpacked that the caller does not ask for; failures are ``FlatbufferError``.
"""

from __future__ import annotations

import struct

import numpy as np

_U16, _I32, _U32 = struct.Struct("<H"), struct.Struct("<i"), struct.Struct("<I")
# Tables and elements read from one file; the shipped grocery models take under 30,000.
MAX_UNITS = 1 << 20


class FlatbufferError(ValueError):
    """The bytes are not a well-formed flatbuffer (or cost more to read than their size allows)."""


class Reader:
    """Reads tables out of ``data``; at most ``budget`` tables + vector elements in all."""

    def __init__(self, data: bytes, budget: int) -> None:
        self.data = data
        self.size = len(data)
        self.left = min(budget, MAX_UNITS)

    def spend(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise FlatbufferError("it refers to the same data over and over (more to read than the file holds)")

    def _check(self, position: int, length: int, what: str) -> None:
        if position < 0 or length < 0 or position + length > self.size:
            raise FlatbufferError(f"{what} at byte {position} ({length} bytes) lies outside the "
                                  f"{self.size}-byte file")

    def u32(self, position: int, what: str = "offset") -> int:
        self._check(position, 4, what)
        return _U32.unpack_from(self.data, position)[0]

    def root(self) -> Table:
        return self.table(self.u32(0, "root offset"), "root table")

    def table(self, position: int, what: str) -> Table:
        self.spend(1)
        self._check(position, 4, what)
        vtable = position - _I32.unpack_from(self.data, position)[0]
        self._check(vtable, 4, f"{what}'s field table")
        vtable_size, table_size = _U16.unpack_from(self.data, vtable)[0], _U16.unpack_from(self.data, vtable + 2)[0]
        if vtable_size < 4 or vtable_size % 2:
            raise FlatbufferError(f"{what} at byte {position} has a malformed field table")
        self._check(vtable, vtable_size, f"{what}'s field table")
        self._check(position, max(table_size, 4), what)
        return Table(self, position, vtable, vtable_size, table_size, what)


class Table:
    """One table: fields by their schema index (0, 1, ...), absent fields as defaults."""

    def __init__(self, reader: Reader, position: int, vtable: int, vtable_size: int, table_size: int,
                 what: str) -> None:
        self.reader, self.position, self.what = reader, position, what
        self._vtable, self._vtable_size, self._table_size = vtable, vtable_size, table_size

    def _field(self, index: int, size: int) -> int | None:
        """Absolute position of field ``index`` (``size`` bytes), or None when absent."""
        slot = 4 + 2 * index
        if slot + 2 > self._vtable_size:
            return None
        offset = _U16.unpack_from(self.reader.data, self._vtable + slot)[0]
        if offset == 0:
            return None
        if offset + size > self._table_size:
            raise FlatbufferError(f"{self.what} at byte {self.position}: field {index} lies outside the table")
        return self.position + offset

    def scalar(self, index: int, fmt: str, default: float | int) -> float | int:
        layout = struct.Struct("<" + fmt)
        position = self._field(index, layout.size)
        return default if position is None else layout.unpack_from(self.reader.data, position)[0]

    def _target(self, index: int, what: str) -> int | None:
        position = self._field(index, 4)
        if position is None:
            return None
        return position + self.reader.u32(position, what)

    def table(self, index: int, what: str) -> Table | None:
        target = self._target(index, what)
        return None if target is None else self.reader.table(target, what)

    def _vector(self, index: int, item_size: int, what: str, limit: int | None = None) -> tuple[int, int] | None:
        target = self._target(index, what)
        if target is None:
            return None
        count = self.reader.u32(target, what)
        if limit is not None and count > limit:
            # Checked before anything is built for it: entries can all point at one small table.
            raise FlatbufferError(f"{what} lists {count} entries (at most {limit} are read)")
        self.reader._check(target + 4, count * item_size, what)
        return target + 4, count

    def vector_length(self, index: int, item_size: int, what: str) -> int | None:
        """The element count of a vector, bounds-checked, without reading its elements (e.g. weights)."""
        vector = self._vector(index, item_size, what)
        return None if vector is None else vector[1]

    def numbers(self, index: int, dtype: str, what: str, limit: int | None = None, *,
                per_unit: int = 1) -> np.ndarray | None:
        """A vector of numbers (little-endian ``dtype``, e.g. "<i4") as a read-only array;
        ``per_unit``: elements per unit of budget (arrays the caller keeps as arrays are cheap)."""
        kind = np.dtype(dtype)
        vector = self._vector(index, kind.itemsize, what, limit)
        if vector is None:
            return None
        start, count = vector
        self.reader.spend(1 + count // per_unit)
        return np.frombuffer(self.reader.data, dtype=kind, count=count, offset=start)

    def tables(self, index: int, what: str, limit: int | None = None) -> list[Table] | None:
        vector = self._vector(index, 4, what, limit)
        if vector is None:
            return None
        start, count = vector
        self.reader.spend(count)
        return [self.reader.table(start + 4 * i + self.reader.u32(start + 4 * i, what), f"{what} {i}")
                for i in range(count)]

    def string(self, index: int, what: str, limit: int = 256) -> str | None:
        """A string field, which must be UTF-8 (interpreters decode names strictly), cut to
        ``limit`` characters (names only end up in error messages)."""
        vector = self._vector(index, 1, what)
        if vector is None:
            return None
        start, count = vector
        self.reader.spend(count)
        try:
            text = bytes(self.reader.data[start:start + count]).decode("utf-8")
        except UnicodeDecodeError:
            raise FlatbufferError(f"{what} is not UTF-8 text") from None
        return text[:limit]
