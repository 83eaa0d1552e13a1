"""THE preprocessing: one definition used by training, calibration, evaluation and devices.

A frame becomes network input in three steps, all driven by the model card's
``InputSpec``: colour conversion (BGR/gray/BGRA -> the model's channel order), fitting
the frame to the input's aspect ratio, and a resize. Normalisation happens inside
edgeshop models' graphs, so the result is uint8 pixels.

How a frame (or a shelf slot) of another aspect ratio is fitted, ``fit``:
- ``crop`` (training's rule): the card's centre crop to the input's aspect ratio (times
  ``crop_fraction``; a card whose resize rule is ``stretch`` stretches);
- ``pad``: letterbox: the whole region, scaled to fit, bordered with the card's mean
  colour (what the network reads as zero);
- ``stretch``: the whole region resized to the input size, distorted.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgeshop._io import open_regular
from edgeshop.errors import ImageInputError
from edgeshop.runtime.image_header import FORMATS, HeaderRefused, ImageHeader, image_format, read_header
from edgeshop.tflite.modelcard import InputSpec

# Decoding a 12000x9000 photo at full size costs ~324 MB. At most MAX_DECODE_PIXELS are
# decoded (50 MB as BGR): larger JPEGs at 1/2, 1/4 or 1/8 scale straight from the DCT
# (cheap, and we downscale anyway); larger images of other formats are refused.
_REDUCED_FLAGS = ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4), (8, cv2.IMREAD_REDUCED_COLOR_8))
MAX_DECODE_PIXELS = 4096 * 4096
# Peak memory of one read_image stays under ~250 MB (Python + OpenCV ~45 MB, the file, the decoded
# image, the decoder's buffers): files larger than MAX_FILE_BYTES are refused from their size alone,
# and what a decoder holds besides the image (a progressive JPEG's coefficients, at full size
# whatever the output scale; a TIFF strip; a GIF or WebP canvas) must fit MAX_DECODER_BUFFER_BYTES.
MAX_FILE_BYTES = 64 * 2**20
MAX_DECODER_BUFFER_BYTES = 80 * 2**20
# Files read_image decodes (OpenCV's codecs; GIF: the first frame): datasets and folder sources use this list.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
FITS = ("crop", "pad", "stretch")
# Defaults of Classifier: shelf slots are letterboxed (the best top-1 on tall and wide slots,
# measured by studies/grocery/roi_fit_study.py, docs/cameras.md); whole frames keep training's crop, so
# edgeshop agrees with evaluation, the browser page and MediaPipe on phones.
SLOT_FIT = "pad"
FRAME_FIT = "crop"


def check_fit(fit: str) -> str:
    """``fit`` if it is one of FITS, else a ValueError naming the choices."""
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    return fit


def check_frame(image: object) -> np.ndarray:
    """``image`` itself if it is a usable frame (HxW, HxWx1, HxWx3 BGR or HxWx4 BGRA uint8),
    else an ``ImageInputError`` that says what was wrong. Nothing is copied: a frame may
    be a huge broadcast view."""
    if image is None:
        raise ImageInputError("image is None (a camera read that failed returns None; check the source)")
    if not isinstance(image, np.ndarray):
        raise ImageInputError(f"image must be a numpy array (OpenCV BGR), got {type(image).__name__}")
    if image.size == 0:
        raise ImageInputError(f"image is empty (shape {image.shape})")
    if image.dtype != np.uint8:
        raise ImageInputError(
            f"image dtype must be uint8, got {image.dtype}; convert with "
            "cv2.convertScaleAbs or (img * 255).astype(np.uint8) for 0-1 floats"
        )
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4)):
        return image
    raise ImageInputError(f"image must be HxW, HxWx1, HxWx3 or HxWx4, got shape {image.shape}")


def crop_box(height: int, width: int, spec: InputSpec) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the region of a HxW frame that the model sees."""
    if spec.resize == "stretch":
        return 0, 0, width, height
    target = spec.width / spec.height
    if width / height > target:
        h, w = height, max(1, round(height * target))
    else:
        h, w = max(1, round(width / target)), width
    h = max(1, round(h * spec.crop_fraction))
    w = max(1, round(w * spec.crop_fraction))
    return (width - w) // 2, (height - h) // 2, w, h


def fit_box(height: int, width: int, spec: InputSpec, fit: str = "crop") -> tuple[int, int, int, int]:
    """(x, y, w, h) of the part of a HxW region that the model sees with ``fit``: the
    centre crop for ``crop``, all of it for ``pad`` and ``stretch``."""
    if check_fit(fit) == "crop":
        return crop_box(height, width, spec)
    return 0, 0, width, height


def preprocess(image: np.ndarray, spec: InputSpec, fit: str = "crop") -> np.ndarray:
    """Frame (OpenCV BGR/gray/BGRA uint8) -> model pixels (spec.height x spec.width x 3 uint8).

    ``fit`` says how a frame of another aspect ratio is fitted (module docstring). Only
    the part the model sees is ever copied, and an axis a frame repeats by a zero stride
    (a broadcast view) is resized once, so any view costs memory of the input's size.
    """
    frame = check_frame(image)
    x, y, w, h = fit_box(frame.shape[0], frame.shape[1], spec, fit)
    region = frame[y : y + h, x : x + w]
    if fit == "pad":
        scale = min(spec.width / w, spec.height / h)
        inner_w, inner_h = min(spec.width, max(1, round(w * scale))), min(spec.height, max(1, round(h * scale)))
    else:
        inner_w, inner_h = spec.width, spec.height
    pixels = _model_colours(_resize_view(region, inner_w, inner_h, spec.interpolation), spec.color_order)
    if (inner_w, inner_h) == (spec.width, spec.height):
        return pixels
    top, left = (spec.height - inner_h) // 2, (spec.width - inner_w) // 2
    fill = [float(min(255, max(0, round(m)))) for m in spec.mean]
    return cv2.copyMakeBorder(pixels, top, spec.height - inner_h - top, left, spec.width - inner_w - left,
                              cv2.BORDER_CONSTANT, value=fill)


def _resize_view(region: np.ndarray, width: int, height: int, interpolation: str) -> np.ndarray:
    """``resize`` of a frame region that may be a strided or broadcast view (HxW or HxWxC).

    An axis with stride 0 holds one value repeated: it is resized as a single row or
    column and broadcast back, which gives the pixels resizing a copy would give.
    """
    if region.strides[0] != 0 and region.strides[1] != 0:  # an ordinary view: OpenCV reads it in place
        return _resize(region, width, height, interpolation, (region.shape[1], region.shape[0]))
    rows = region[:1] if region.strides[0] == 0 and region.shape[0] > 1 else region
    rows = rows[:, :1] if region.strides[1] == 0 and region.shape[1] > 1 else rows
    resized = _resize(np.ascontiguousarray(rows), width, height, interpolation, (region.shape[1], region.shape[0]))
    if resized.ndim < region.ndim:  # cv2 drops a trailing axis of length 1
        resized = resized[..., None]
    return np.ascontiguousarray(np.broadcast_to(resized, (height, width, *region.shape[2:])))


def _model_colours(pixels: np.ndarray, color_order: str) -> np.ndarray:
    """Input-sized pixels (gray, BGR or BGRA) in the model's channel order, contiguous uint8."""
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 2:
        code = cv2.COLOR_GRAY2RGB if color_order == "RGB" else cv2.COLOR_GRAY2BGR
    elif pixels.shape[2] == 4:
        code = cv2.COLOR_BGRA2RGB if color_order == "RGB" else cv2.COLOR_BGRA2BGR
    else:
        code = cv2.COLOR_BGR2RGB if color_order == "RGB" else None
    if not pixels.flags.c_contiguous:  # a resize's output already is: no array call on the hot path
        pixels = np.ascontiguousarray(pixels)
    return pixels if code is None else cv2.cvtColor(pixels, code)


def resize(region: np.ndarray, width: int, height: int, interpolation: str = "area") -> np.ndarray:
    """Resize a region to width x height by the model card's rule (see INTERPOLATIONS).

    "area" is OpenCV's INTER_AREA when shrinking: exact, but ~1 ms for 480 -> 288 (a
    non-integer factor), a quarter of an int8 invoke. "linear" is the fast rule: average
    whole k x k blocks first (k = the integer part of the factor when >= 2; OpenCV's
    integer path, ~20x faster; the region is trimmed by < k pixels, centred), then
    bilinear for the remaining factor below 2, where bilinear still sees every pixel.
    """
    return _resize(region, width, height, interpolation, (region.shape[1], region.shape[0]))


def _resize(region: np.ndarray, width: int, height: int, interpolation: str,
            source: tuple[int, int]) -> np.ndarray:
    """``resize`` with its choices made for a ``source`` (w, h) region of which ``region`` may
    keep a single row or column (a broadcast axis, resized to 1 and broadcast back)."""
    (w, h), (src_w, src_h) = region.shape[1::-1], source
    out_w, out_h = (width if w == src_w else 1), (height if h == src_h else 1)
    if (src_w, src_h) == (width, height):
        return region
    if interpolation == "area":
        shrinking = src_w > width or src_h > height
        return cv2.resize(region, (out_w, out_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    k = min(src_w // width, src_h // height)
    if k >= 2:
        kx, ky = (k if w == src_w else 1), (k if h == src_h else 1)
        trim_w, trim_h = w - w % kx, h - h % ky
        top, left = (h - trim_h) // 2, (w - trim_w) // 2
        region = cv2.resize(region[top : top + trim_h, left : left + trim_w], (trim_w // kx, trim_h // ky),
                            interpolation=cv2.INTER_AREA)
        if (src_w - src_w % k) // k == width and (src_h - src_h % k) // k == height:
            return region
    return cv2.resize(region, (out_w, out_h), interpolation=cv2.INTER_LINEAR)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as HxWx3 uint8 BGR, or raise ``ImageInputError`` naming the file.

    Reads bytes first (unicode paths work everywhere), converts gray/alpha/16-bit/CMYK
    to 8-bit BGR. Memory is bounded before anything is decoded: only regular files of at
    most ``MAX_FILE_BYTES`` are read, only the formats of ``image_header.FORMATS`` are
    decoded, the size their header declares must fit ``MAX_DECODE_PIXELS`` (JPEGs are
    decoded at 1/2, 1/4 or 1/8 scale to fit it, so a JPEG may declare up to 64 times as
    many pixels) and the decoder's own buffers must fit ``MAX_DECODER_BUFFER_BYTES``.
    """
    path = Path(path)
    data = _read_bounded(path)
    image = _decode(path, data, _decode_flags(path, data))
    if image.dtype != np.uint8:  # IMREAD_COLOR already scales 16-bit down; belt and braces
        image = cv2.convertScaleAbs(image, alpha=255.0 / 65535.0)
    return image


def _read_bounded(path: Path) -> np.ndarray:
    """The bytes of a regular file of at most MAX_FILE_BYTES, or ImageInputError."""
    try:
        opened = open_regular(path)
    except OSError as exc:
        raise ImageInputError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if opened is None:  # /dev/zero or a pipe would be read without end
        raise ImageInputError(f"{path}: not a regular file (a device, pipe or folder); pass image files")
    file, file_size = opened
    with file:
        if file_size > MAX_FILE_BYTES:
            raise ImageInputError(
                f"{path}: file of {file_size / 2**20:,.0f} MiB, more than the {MAX_FILE_BYTES / 2**20:.0f} MiB "
                "edgeshop reads as one image; re-save it smaller"
            )
        data = np.empty(file_size + 1, np.uint8)  # one byte more: a file that grew is noticed
        try:
            size = file.readinto(memoryview(data)) or 0
        except OSError as exc:
            raise ImageInputError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if size == 0:
        raise ImageInputError(f"{path}: file is empty (0 bytes)")
    if size > file_size:
        raise ImageInputError(f"{path}: the file grew while it was read; read it again when it is complete")
    return data[:size]


def _decode_flags(path: Path, data: np.ndarray) -> int:
    """The imdecode flags that keep the decoding within its bounds, or an error."""
    try:
        header = read_header(data)
    except HeaderRefused as exc:
        raise ImageInputError(f"{path}: not a readable image ({image_format(data)}: {exc})") from None
    if header is None:
        raise ImageInputError(f"{path}: not a readable image (edgeshop decodes {', '.join(FORMATS)}; "
                              "convert it to JPEG or PNG)")
    kind, height, width = header.format, header.height, header.width
    pixels = height * width
    if pixels == 0:
        raise ImageInputError(f"{path}: not a readable image ({kind} header declares {width}x{height} pixels)")
    flags = _output_flags(header)
    if flags is None:
        raise ImageInputError(
            f"{path}: declares {width}x{height} pixels, more than the {MAX_DECODE_PIXELS:,} edgeshop decodes "
            f"(edgeshop.runtime.preprocess.MAX_DECODE_PIXELS{'; JPEG: 64 times that' if kind == 'JPEG' else ''}); "
            "downscale the image"
        )
    if header.buffer_bytes > MAX_DECODER_BUFFER_BYTES:
        raise ImageInputError(
            f"{path}: decoding this {width}x{height} {kind} would buffer {header.buffer_bytes / 2**20:,.0f} MiB "
            f"besides the image (progressive JPEG coefficients, TIFF strips, GIF/WebP canvases), more than the "
            f"{MAX_DECODER_BUFFER_BYTES / 2**20:.0f} MiB edgeshop allows "
            "(edgeshop.runtime.preprocess.MAX_DECODER_BUFFER_BYTES); re-save it as a baseline JPEG or PNG"
        )
    return flags


def _output_flags(header: ImageHeader) -> int | None:
    """IMREAD_COLOR, or the gentlest DCT reduction that fits MAX_DECODE_PIXELS; None if none does."""
    pixels = header.height * header.width
    if pixels <= MAX_DECODE_PIXELS:
        return cv2.IMREAD_COLOR
    if header.reducible:
        for factor, flag in _REDUCED_FLAGS:
            if pixels / factor**2 <= MAX_DECODE_PIXELS:
                return flag
    return None


def _decode(path: Path, data: np.ndarray, flags: int) -> np.ndarray:
    """cv2.imdecode with every failure (None, or OpenCV's own cv2.error) as ImageInputError."""
    try:
        image = cv2.imdecode(data, flags)
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1][:200]
        raise ImageInputError(f"{path}: OpenCV cannot decode it ({reason})") from None
    if image is None:
        raise ImageInputError(f"{path}: not a readable image (corrupt, truncated or unsupported format)")
    return image
