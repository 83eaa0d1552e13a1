"""The metadata a .tflite file carries: labels, input spec, provenance; and the archive it lives in.

A model file is the TFLite flatbuffer followed by one uncompressed (stored) zip archive.
The archive holds `labels.txt`, which the flatbuffer's standard TFLite Metadata names as
the output's label file (MediaPipe Tasks and the TFLite Task Library read it there), and
edgeshop's own card `edgeshop/modelcard.json`. Both standard readers map stored members
straight out of the file and see only the last zip in it, so there is exactly one archive,
always stored, and every rewrite of a model goes through `split_archive`/`attach_archive`
to keep all of its members. Interpreters ignore the trailing bytes; `zipfile` finds the
archive by its end record, so reading the card needs only the standard library. Models
written by earlier edgeshop versions (a deflate-compressed zip) still read.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeshop.errors import ModelCardError

CARD_ENTRY = "edgeshop/modelcard.json"
LABELS_ENTRY = "labels.txt"
CARD_FORMAT_VERSION = 1
# A card is a few KB; anything near this is damage or abuse, not metadata.
MAX_CARD_BYTES = 1 << 20
RESIZE_RULES = ("center_crop", "stretch")
COLOR_ORDERS = ("RGB", "BGR")
# "area": OpenCV INTER_AREA (exact box average; ~1 ms for a 640x480 frame at 288 px).
# "linear": bilinear, after an integer-factor box average when shrinking 2x or more
# (no aliasing from large frames; ~5x faster). Cards without the field mean "area".
INTERPOLATIONS = ("area", "linear")


@dataclass(frozen=True)
class InputSpec:
    """How a camera frame becomes the network's input tensor.

    ``mean``/``std`` describe the normalisation; when ``normalization_in_graph`` is true
    (edgeshop's own models) the network applies it itself and the runtime feeds raw
    0-255 pixel values, so int8 models take pixels with no arithmetic at all.
    """

    height: int
    width: int
    color_order: str = "RGB"
    resize: str = "center_crop"
    crop_fraction: float = 1.0
    interpolation: str = "area"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    normalization_in_graph: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.height, int) and isinstance(self.width, int)):
            raise ModelCardError(f"input height/width must be integers, got {self.height!r}x{self.width!r}")
        if not (1 <= self.height <= 8192 and 1 <= self.width <= 8192):
            raise ModelCardError(f"input size {self.height}x{self.width} is out of range 1..8192")
        if self.color_order not in COLOR_ORDERS:
            raise ModelCardError(f"color_order must be one of {COLOR_ORDERS}, got {self.color_order!r}")
        if self.resize not in RESIZE_RULES:
            raise ModelCardError(f"resize must be one of {RESIZE_RULES}, got {self.resize!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ModelCardError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        if not (0.05 <= float(self.crop_fraction) <= 1.0):
            raise ModelCardError(f"crop_fraction must be in [0.05, 1], got {self.crop_fraction!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
                raise ModelCardError(f"{name} must be three numbers, got {value!r}")
        if any(s == 0 for s in self.std):
            raise ModelCardError(f"std must not contain 0, got {self.std!r}")


@dataclass(frozen=True)
class ModelCard:
    """Everything the runtime needs to use a model, plus where it came from."""

    labels: tuple[str, ...]
    input: InputSpec
    name: str = "edgeshop-model"
    arch: str = ""
    quantization: str = "float32"
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = CARD_FORMAT_VERSION

    def to_json(self) -> str:
        data = asdict(self)
        data["labels"] = list(self.labels)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "model card") -> ModelCard:
        """Parse and validate a card; every failure is a ``ModelCardError`` naming ``source``."""
        if len(text) > MAX_CARD_BYTES:
            raise ModelCardError(f"{source}: model card is {len(text)} bytes, more than {MAX_CARD_BYTES}")
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelCardError(f"{source}: model card is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ModelCardError(f"{source}: model card must be a JSON object")
        try:
            version = data.get("format_version", CARD_FORMAT_VERSION)
            if not isinstance(version, int) or version > CARD_FORMAT_VERSION:
                raise ModelCardError(
                    f"card format_version {version!r} is newer than this edgeshop reads "
                    f"({CARD_FORMAT_VERSION}); upgrade edgeshop"
                )
            labels = data["labels"]
            if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
                raise ModelCardError("labels must be a non-empty list of strings")
            spec = data["input"]
            if not isinstance(spec, dict):
                raise ModelCardError("input must be an object")
            spec = dict(spec)
            for key in ("mean", "std"):
                if key in spec:
                    if not isinstance(spec[key], list):
                        raise ModelCardError(f"{key} must be a list of three numbers")
                    spec[key] = tuple(spec[key])
            input_spec = InputSpec(**spec)
            extra = data.get("extra", {})
            if not isinstance(extra, dict):
                raise ModelCardError("extra must be an object")
            return cls(
                labels=tuple(labels),
                input=input_spec,
                name=str(data.get("name", "edgeshop-model")),
                arch=str(data.get("arch", "")),
                quantization=str(data.get("quantization", "float32")),
                extra=extra,
                format_version=version,
            )
        except ModelCardError as exc:
            raise ModelCardError(f"{source}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelCardError(f"{source}: malformed model card ({type(exc).__name__}: {exc})") from None


def split_archive(content: bytes) -> tuple[bytes, dict[str, bytes]]:
    """The flatbuffer of a model file and the members of the archive appended to it ({} when none)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, OSError):
        return content, {}
    with archive:
        infos = archive.infolist()
        if not infos:
            return content, {}
        # header_offset is where a member starts in `content` (zipfile adds any prefix's
        # length), so the first member marks the end of the flatbuffer.
        start = min(info.header_offset for info in infos)
        members = {}
        for info in infos:
            if info.file_size > MAX_CARD_BYTES:
                raise ModelCardError(f"archive member {info.filename!r} is {info.file_size} bytes, "
                                     f"more than {MAX_CARD_BYTES}")
            try:
                members[info.filename] = archive.read(info)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise ModelCardError(f"archive member {info.filename!r} is damaged ({exc})") from None
    return content[:start], members


def attach_archive(flatbuffer: bytes, members: dict[str, bytes]) -> bytes:
    """``flatbuffer`` followed by one stored zip of ``members`` (the form standard readers need)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return flatbuffer + buffer.getvalue()


def labels_file(labels: tuple[str, ...] | list[str]) -> bytes:
    """labels.txt as standard readers expect it: one label per line, in output order."""
    broken = [label for label in labels if "\n" in label or "\r" in label]
    if broken:
        raise ModelCardError(f"labels must not contain line breaks (one label per line in labels.txt): {broken[:3]!r}")
    try:
        return ("\n".join(labels) + "\n").encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: text no file or client can hold
        raise ModelCardError(f"labels must be valid Unicode text: {exc}") from None


def embed_card(model_bytes: bytes, card: ModelCard) -> bytes:
    """The model with ``card`` and its labels.txt in its archive; other archive members are kept."""
    flatbuffer, members = split_archive(model_bytes)
    members[LABELS_ENTRY] = labels_file(card.labels)
    members[CARD_ENTRY] = card.to_json().encode("utf-8")
    return attach_archive(flatbuffer, members)


def read_card(model_bytes: bytes, source: str = "model") -> ModelCard | None:
    """The card inside ``model_bytes``, or None when the model carries none."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(model_bytes))
    except (zipfile.BadZipFile, OSError):
        return None
    with archive:
        try:
            info = archive.getinfo(CARD_ENTRY)
        except KeyError:
            return None
        if info.file_size > MAX_CARD_BYTES:
            raise ModelCardError(
                f"{source}: embedded model card is {info.file_size} bytes, more than {MAX_CARD_BYTES}"
            )
        try:
            text = archive.read(info)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise ModelCardError(f"{source}: embedded model card is damaged ({exc})") from None
    return ModelCard.from_json(text, source=source)

