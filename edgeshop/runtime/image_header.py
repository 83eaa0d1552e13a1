"""What decoding an image file will cost, read from its header without decoding it.

A decoder allocates what the header declares before it reads a single pixel, so a 31 KB
PNG can ask for 768 MB (a decompression bomb). ``read_image`` checks this cost first, so
the check must read the header exactly as the decoder does: the JPEG walker follows
libjpeg's marker rules (stuffed ``FF 00`` and fill bytes skipped, every segment skipped by
its length, the first frame header wins), TIFF tags listed twice are refused (libtiff
keeps the first, a naive reader the last). Only the formats parsed here are decoded at
all: OpenCV picks its decoder by content, not by file name, and would otherwise decode
formats whose size nobody checked.

The parsers read the bytes that will be decoded, in place (``BufferBytes``): a few bytes
at a time, jumping over segments by their lengths, never copying the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

FORMATS = ("JPEG", "PNG", "BMP", "WebP", "TIFF", "GIF")

# Work bounds of the header walk itself (a crafted header must not make the check slow).
MAX_JPEG_SEGMENTS = 10_000  # real files have < 100 segments before the image data
MAX_JPEG_STRAY_BYTES = 1 << 20  # bytes between segments that libjpeg would skip one by one
MAX_TIFF_ENTRIES = 4096
MAX_PNG_CHUNKS = 10_000


class HeaderRefused(ValueError):
    """The header is garbled, truncated, or uses a feature whose decoding cost is not checked."""


class Bytes(Protocol):
    """What the parsers need: ``bytes`` or ``BufferBytes``."""

    def __len__(self) -> int: ...
    def __getitem__(self, key: slice) -> bytes: ...
    def find(self, sub: bytes, start: int) -> int: ...


class BufferBytes:
    """A read-only view of a buffer (a numpy array, a memoryview) that the parsers can use
    without copying it: slices are copied (a few bytes each), ``find`` searches in place."""

    def __init__(self, buffer: object) -> None:
        self._view = memoryview(buffer).cast("B")  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._view)

    def __getitem__(self, key: slice) -> bytes:
        return self._view[key].tobytes()

    def find(self, sub: bytes, start: int) -> int:
        found = re.compile(re.escape(sub)).search(self._view, start)
        return -1 if found is None else found.start()


@dataclass(frozen=True)
class ImageHeader:
    """The decoding cost a header declares.

    ``buffer_bytes`` is what the decoder holds beside the decoded image, at full size
    whatever the output scale (a progressive JPEG's coefficients, a TIFF strip, a GIF canvas).
    ``reducible``: the decoder can scale down while decoding (libjpeg's DCT scaling).
    """

    format: str
    height: int
    width: int
    buffer_bytes: int = 0
    reducible: bool = False


def _int(data: Bytes, start: int, size: int, order: str = "big") -> int:
    field = data[start : start + size]
    if len(field) != size:
        raise HeaderRefused("truncated header")
    return int.from_bytes(field, order)


# --- JPEG: libjpeg's rules (jdmarker.c) -------------------------------------------------------
_JPEG_FRAMES = {0xC0: False, 0xC1: False, 0xC2: True, 0xC9: False, 0xCA: True}  # SOFn -> progressive
_JPEG_LENGTHLESS = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: no length field
_JPEG_SKIPPED = {0xC4, 0xCC, 0xDB, 0xDC, 0xDD, 0xFE, *range(0xE0, 0xF0)}  # DHT DAC DQT DNL DRI COM APPn


def _next_marker(data: Bytes, i: int, stray: int) -> tuple[int, int, int]:
    """(marker, index after it, stray bytes so far) as libjpeg's next_marker finds it:
    bytes other than FF are skipped, FF runs are fill, FF 00 is a stuffed zero and skipped."""
    n = len(data)
    while True:
        j = data.find(b"\xff", i)
        if j < 0:
            raise HeaderRefused("no JPEG frame header")
        stray += j - i
        k = j + 1
        while k < n and data[k : k + 1] == b"\xff":
            k += 1
            stray += 1
        if stray > MAX_JPEG_STRAY_BYTES:
            raise HeaderRefused(f"more than {MAX_JPEG_STRAY_BYTES:,} stray bytes between JPEG markers")
        if k >= n:
            raise HeaderRefused("truncated JPEG header")
        marker = data[k : k + 1][0]
        if marker != 0:
            return marker, k + 1, stray
        i = k + 1
        stray += 2


def _jpeg(data: Bytes) -> ImageHeader:
    # Walks the marker segments up to the first scan (a few jumps, whatever the file size):
    # EXIF/XMP/ICC segments may push the frame header megabytes into the file.
    i, stray, frame = 2, 0, None
    for _ in range(MAX_JPEG_SEGMENTS):
        marker, i, stray = _next_marker(data, i, stray)
        if marker in _JPEG_LENGTHLESS:
            continue
        if marker in (0xD8, 0xD9):
            raise HeaderRefused("JPEG has no frame header before its end (or a second start) marker")
        length = _int(data, i, 2)
        if marker in _JPEG_FRAMES:
            if frame is not None:
                raise HeaderRefused("JPEG has two frame headers")  # libjpeg: JERR_SOF_DUPLICATE
            frame = _jpeg_frame(data, i, length, progressive=_JPEG_FRAMES[marker])
        elif marker == 0xDA:
            if frame is None:
                raise HeaderRefused("JPEG scan before any frame header")
            return _jpeg_cost(frame, scan_components=_int(data, i + 2, 1))
        elif 0xC0 <= marker <= 0xCF and marker not in _JPEG_SKIPPED:
            raise HeaderRefused(f"JPEG process SOF{marker - 0xC0} (lossless or hierarchical) is not supported")
        elif marker not in _JPEG_SKIPPED:
            raise HeaderRefused(f"unknown JPEG marker FF{marker:02X}")  # libjpeg: JERR_UNKNOWN_MARKER
        i += max(length, 2)  # libjpeg skips a segment by its length field (which counts itself)
    raise HeaderRefused(f"more than {MAX_JPEG_SEGMENTS:,} JPEG segments before the image data")


@dataclass(frozen=True)
class _JpegFrame:
    height: int
    width: int
    progressive: bool
    sampling: tuple[tuple[int, int], ...]  # (h, v) per component


def _jpeg_frame(data: Bytes, i: int, length: int, progressive: bool) -> _JpegFrame:
    precision, height, width, count = _int(data, i + 2, 1), _int(data, i + 3, 2), _int(data, i + 5, 2), _int(
        data, i + 7, 1)
    if precision != 8:
        raise HeaderRefused(f"{precision}-bit JPEG samples are not supported (8-bit only)")
    if count not in (1, 3, 4) or length != 8 + 3 * count:
        raise HeaderRefused(f"JPEG frame header with {count} components")
    sampling = []
    for c in range(count):
        factors = _int(data, i + 8 + 3 * c + 1, 1)
        h, v = factors >> 4, factors & 0x0F
        if not (1 <= h <= 4 and 1 <= v <= 4):
            raise HeaderRefused("bad JPEG sampling factors")
        sampling.append((h, v))
    return _JpegFrame(height, width, progressive, tuple(sampling))


def _jpeg_cost(frame: _JpegFrame, scan_components: int) -> ImageHeader:
    # libjpeg keeps every DCT coefficient of the whole frame (at full size, whatever the output
    # scale) when the file has several scans: progressive, or a first scan with fewer
    # components than the frame (jdinput.c: has_multiple_scans). 2 bytes a coefficient.
    buffered = 0
    if frame.progressive or scan_components < len(frame.sampling):
        h_max = max(h for h, _ in frame.sampling)
        v_max = max(v for _, v in frame.sampling)
        mcu_columns = -(-frame.width // (8 * h_max))
        mcu_rows = -(-frame.height // (8 * v_max))
        blocks = sum(mcu_columns * h * mcu_rows * v for h, v in frame.sampling)
        buffered = blocks * 64 * 2
    return ImageHeader("JPEG", frame.height, frame.width, buffered, reducible=True)


# --- PNG ---------------------------------------------------------------------------------------
def _png(data: Bytes) -> ImageHeader:
    if data[12:16] != b"IHDR":  # libpng: IHDR must come first
        raise HeaderRefused("PNG without IHDR first")
    width, height, depth = _int(data, 16, 4), _int(data, 20, 4), _int(data, 24, 1)
    # An animated PNG (acTL before the image data): OpenCV composes it on three full-size
    # RGBA canvases of the file's bit depth, then converts the result to 8 bits.
    i, animated = 8, False
    for _ in range(MAX_PNG_CHUNKS):
        length, kind = _int(data, i, 4), data[i + 4 : i + 8]
        if kind in (b"IDAT", b"IEND", b""):
            break
        animated |= kind == b"acTL"
        i += 12 + length
    canvas = 4 * (2 if depth == 16 else 1)
    return ImageHeader("PNG", height, width, (3 * canvas + 4) * height * width if animated else 0)


# --- BMP ---------------------------------------------------------------------------------------
def _bmp(data: Bytes) -> ImageHeader:
    if _int(data, 14, 4, "little") == 12:  # OS/2 core header: 16-bit sizes
        return ImageHeader("BMP", _int(data, 20, 2, "little"), _int(data, 18, 2, "little"))
    width = int.from_bytes(data[18:22], "little", signed=True)
    height = int.from_bytes(data[22:26], "little", signed=True)  # negative: stored top-down
    if len(data[18:26]) != 8:
        raise HeaderRefused("truncated BMP header")
    return ImageHeader("BMP", abs(height), abs(width))


# --- WebP --------------------------------------------------------------------------------------
def _webp(data: Bytes) -> ImageHeader:
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: decoded straight into the output
        return ImageHeader("WebP", _int(data, 28, 2, "little") & 0x3FFF, _int(data, 26, 2, "little") & 0x3FFF)
    if chunk == b"VP8L":  # lossless: libwebp holds the whole ARGB image, then OpenCV converts
        bits = _int(data, 21, 4, "little")
        height, width = ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
        return ImageHeader("WebP", height, width, 8 * height * width)
    if chunk == b"VP8X":  # extended: decoded as BGRA (alpha), or composed on canvases (animation)
        height, width = _int(data, 27, 3, "little") + 1, _int(data, 24, 3, "little") + 1
        animated = _int(data, 20, 1) & 0x02
        # libwebp's animation decoder: the current and the disposed canvas, a frame buffer, the
        # lossless decoder's ARGB cache (4 bytes each); still images: BGRA plus the ARGB cache.
        return ImageHeader("WebP", height, width, (16 if animated else 8) * height * width)
    raise HeaderRefused("unknown WebP chunk")


# --- TIFF: the first directory, as libtiff reads it --------------------------------------------
_TIFF_SIZE_TAGS = {256: "ImageWidth", 257: "ImageLength", 258: "BitsPerSample", 259: "Compression",
                   277: "SamplesPerPixel", 278: "RowsPerStrip", 322: "TileWidth", 323: "TileLength"}
_TIFF_COMPRESSIONS = {1: "none", 5: "LZW", 8: "Deflate", 32946: "Deflate", 32773: "PackBits"}
_TIFF_TYPE_BYTES = {3: 2, 4: 4, 16: 8}  # SHORT, LONG, LONG8


def _tiff(data: Bytes) -> ImageHeader:
    order = "little" if data[:2] == b"II" else "big"
    big = _int(data, 2, 2, order) == 43  # BigTIFF: 64-bit offsets and counts
    count_size, entry_size, value_at = (8, 20, 12) if big else (2, 12, 8)
    offset = _int(data, 8, 8, order) if big else _int(data, 4, 4, order)
    entries = _int(data, offset, count_size, order)
    if entries > MAX_TIFF_ENTRIES:
        raise HeaderRefused(f"TIFF directory with {entries} entries")
    tags: dict[int, int] = {}
    for k in range(entries):
        entry = offset + count_size + k * entry_size
        tag, kind = _int(data, entry, 2, order), _int(data, entry + 2, 2, order)
        if tag not in _TIFF_SIZE_TAGS:
            continue
        if tag in tags:  # libtiff keeps the first, other readers the last: neither is safe to assume
            raise HeaderRefused(f"TIFF lists {_TIFF_SIZE_TAGS[tag]} twice")
        width = _TIFF_TYPE_BYTES.get(kind)
        count = _int(data, entry + 4, count_size, order)
        if width is None or count < 1 or (count > 1 and tag != 258):
            raise HeaderRefused(f"TIFF {_TIFF_SIZE_TAGS[tag]} of type {kind}, count {count}")
        if count * width > (8 if big else 4):  # BitsPerSample per sample, stored elsewhere
            if count > 16:
                raise HeaderRefused(f"TIFF BitsPerSample with {count} values")
            at = _int(data, entry + value_at, 8 if big else 4, order)
            tags[tag] = max(_int(data, at + s * width, width, order) for s in range(count))
        else:
            tags[tag] = max(_int(data, entry + value_at + s * width, width, order) for s in range(count))
    if 256 not in tags or 257 not in tags:
        raise HeaderRefused("TIFF without ImageWidth/ImageLength")
    width, height = tags[256], tags[257]
    bits, samples, compression = tags.get(258, 1), tags.get(277, 1), tags.get(259, 1)
    if compression not in _TIFF_COMPRESSIONS:
        raise HeaderRefused(f"TIFF compression {compression} is not supported "
                            f"({', '.join(sorted(set(_TIFF_COMPRESSIONS.values())))} are)")
    if bits not in (1, 2, 4, 8, 16) or not 1 <= samples <= 4:
        raise HeaderRefused(f"TIFF with {samples} samples of {bits} bits")
    if 322 in tags or 323 in tags:
        block_width, block_rows = tags.get(322, 0), tags.get(323, 0)
        if block_width == 0 or block_rows == 0:
            raise HeaderRefused("TIFF tile without TileWidth/TileLength")
    else:
        rows = tags.get(278, 0)
        block_width, block_rows = width, height if rows == 0 else min(rows, height)
    # Per strip or tile: libtiff's decoded block, and OpenCV's RGBA buffer of the same size.
    pixels = block_width * block_rows
    return ImageHeader("TIFF", height, width, -(-pixels * samples * bits // 8) + 4 * pixels)


# --- GIF ---------------------------------------------------------------------------------------
def _gif(data: Bytes) -> ImageHeader:
    # OpenCV composes frames (which must fit the screen) on an RGBA canvas of the screen's size
    # and keeps one code byte per frame pixel.
    height, width = _int(data, 8, 2, "little"), _int(data, 6, 2, "little")
    return ImageHeader("GIF", height, width, 5 * height * width)


_SIGNATURES: tuple[tuple[str, Callable[[Bytes], bool], Callable[[Bytes], ImageHeader]], ...] = (
    ("JPEG", lambda d: d[:2] == b"\xff\xd8", _jpeg),
    ("PNG", lambda d: d[:8] == b"\x89PNG\r\n\x1a\n", _png),
    ("BMP", lambda d: d[:2] == b"BM", _bmp),
    ("WebP", lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", _webp),
    ("TIFF", lambda d: d[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), _tiff),
    ("GIF", lambda d: d[:6] in (b"GIF87a", b"GIF89a"), _gif),
)


def _as_bytes(data: object) -> Bytes:
    return data if isinstance(data, bytes) else BufferBytes(data)


def image_format(data: object) -> str | None:
    """The format name of ``FORMATS`` that ``data`` (bytes or a buffer) starts like, or None."""
    data = _as_bytes(data)
    return next((name for name, matches, _ in _SIGNATURES if matches(data)), None)


def read_header(data: object) -> ImageHeader | None:
    """The decoding cost the header of ``data`` (bytes or a buffer) declares; None if the
    format is not one of ``FORMATS``; ``HeaderRefused`` (saying why) if its header is
    truncated, garbled or uses a feature whose cost is not checked here."""
    data = _as_bytes(data)
    for _, matches, parse in _SIGNATURES:
        if matches(data):
            return parse(data)
    return None


def declared_size(data: object) -> tuple[str, int, int] | None:
    """(format, height, width) as the header declares them; None if the format is not
    one of ``FORMATS`` or its header is refused."""
    try:
        header = read_header(data)
    except HeaderRefused:
        return None
    return None if header is None else (header.format, header.height, header.width)
