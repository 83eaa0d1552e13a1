"""The size an image file declares in its header, read without decoding it.

A decoder allocates what the header declares before it reads a single pixel, so a 31 KB
PNG can ask for 768 MB (a decompression bomb). ``read_image`` checks this size first.
Only the formats parsed here are decoded at all: OpenCV picks its decoder by content,
not by file name, and would otherwise decode formats whose size nobody checked.
"""

from __future__ import annotations

from collections.abc import Callable

Buffer = bytes | memoryview  # memoryview(a uint8 numpy array) avoids copying a file read with np.fromfile

FORMATS = ("JPEG", "PNG", "BMP", "WebP", "TIFF", "GIF")


def _int(data, start: int, size: int, order: str = "big") -> int:
    return int.from_bytes(bytes(data[start : start + size]), order)


def _jpeg(data) -> tuple[int, int] | None:
    # Walks the marker segments by their lengths (a few jumps, whatever the file size):
    # EXIF/XMP/ICC segments may push the frame header megabytes into the file.
    data = bytes(data)
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:  # stray bytes between segments: skipped, as libjpeg does
            i = data.find(b"\xff", i)
            if i < 0:
                return None
            continue
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker == 0xDA:  # start of scan before any frame header: not a valid JPEG
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                return None
            return _int(data, i + 5, 2), _int(data, i + 7, 2)
        i += 2 + _int(data, i + 2, 2)
    return None


def _png(data) -> tuple[int, int] | None:
    if len(data) < 24 or bytes(data[12:16]) != b"IHDR":
        return None
    return _int(data, 20, 4), _int(data, 16, 4)


def _bmp(data) -> tuple[int, int] | None:
    if len(data) < 26:
        return None
    if _int(data, 14, 4, "little") == 12:  # OS/2 core header: 16-bit sizes
        return _int(data, 20, 2, "little"), _int(data, 18, 2, "little")
    width = int.from_bytes(bytes(data[18:22]), "little", signed=True)
    height = int.from_bytes(bytes(data[22:26]), "little", signed=True)  # negative: stored top-down
    return abs(height), abs(width)


def _webp(data) -> tuple[int, int] | None:
    if len(data) < 30:
        return None
    chunk = bytes(data[12:16])
    if chunk == b"VP8 ":
        return _int(data, 28, 2, "little") & 0x3FFF, _int(data, 26, 2, "little") & 0x3FFF
    if chunk == b"VP8L":
        bits = _int(data, 21, 4, "little")
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if chunk == b"VP8X":
        return _int(data, 27, 3, "little") + 1, _int(data, 24, 3, "little") + 1
    return None


def _tiff(data) -> tuple[int, int] | None:
    order = "little" if bytes(data[:2]) == b"II" else "big"
    big = _int(data, 2, 2, order) == 43  # BigTIFF: 64-bit offsets and counts
    count_size, entry_size, value_at = (8, 20, 12) if big else (2, 12, 8)
    offset = _int(data, 8, 8, order) if big else _int(data, 4, 4, order)
    if offset + count_size > len(data):
        return None
    size: dict[int, int] = {}
    for k in range(min(_int(data, offset, count_size, order), 4096)):
        entry = offset + count_size + k * entry_size
        if entry + entry_size > len(data):
            break
        tag, kind = _int(data, entry, 2, order), _int(data, entry + 2, 2, order)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT, LONG or LONG8
            width = {3: 2, 4: 4, 16: 8}.get(kind)
            if width is None:
                return None
            size[tag] = _int(data, entry + value_at, width, order)
    if 256 not in size or 257 not in size:
        return None
    return size[257], size[256]


def _gif(data) -> tuple[int, int] | None:
    if len(data) < 10:
        return None
    return _int(data, 8, 2, "little"), _int(data, 6, 2, "little")


_SIGNATURES: tuple[tuple[str, Callable[[Buffer], bool], Callable[[Buffer], tuple[int, int] | None]], ...] = (
    ("JPEG", lambda d: bytes(d[:2]) == b"\xff\xd8", _jpeg),
    ("PNG", lambda d: bytes(d[:8]) == b"\x89PNG\r\n\x1a\n", _png),
    ("BMP", lambda d: bytes(d[:2]) == b"BM", _bmp),
    ("WebP", lambda d: bytes(d[:4]) == b"RIFF" and bytes(d[8:12]) == b"WEBP", _webp),
    ("TIFF", lambda d: bytes(d[:4]) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), _tiff),
    ("GIF", lambda d: bytes(d[:6]) in (b"GIF87a", b"GIF89a"), _gif),
)


def image_format(data: Buffer) -> str | None:
    """The format name of ``FORMATS`` that ``data`` starts like, or None."""
    return next((name for name, matches, _ in _SIGNATURES if matches(data)), None)


def declared_size(data: Buffer) -> tuple[str, int, int] | None:
    """(format, height, width) as the header declares them; None if the format is not
    one of ``FORMATS`` or its header is truncated or garbled."""
    for name, matches, parse in _SIGNATURES:
        if matches(data):
            size = parse(data)
            return None if size is None else (name, *size)
    return None
