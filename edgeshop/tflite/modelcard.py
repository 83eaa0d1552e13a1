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
import math
import unicodedata
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeshop.errors import ModelCardError
from edgeshop.tflite.archive import MAX_ARCHIVE_BYTES, MAX_MEMBER_BYTES, open_archive, read_member

CARD_ENTRY = "edgeshop/modelcard.json"
LABELS_ENTRY = "labels.txt"
CARD_FORMAT_VERSION = 1
# A card is a few KB; anything near this is damage or abuse, not metadata.
MAX_CARD_BYTES = MAX_MEMBER_BYTES
# Cards nest 3-4 levels; deeper JSON only serves to exhaust the stack of whoever copies or prints it.
MAX_CARD_NESTING = 32
# Normalisation constants that keep (pixel - mean) / std finite in float32.
MAX_NORMALISATION = 1e6
MIN_STD = 1e-6
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
        if not (_is_int(self.height) and _is_int(self.width)):
            raise ModelCardError(f"input height/width must be integers, got {_shown(self.height)}x{_shown(self.width)}")
        if not (1 <= self.height <= 8192 and 1 <= self.width <= 8192):
            raise ModelCardError(f"input size {self.height}x{self.width} is out of range 1..8192")
        if self.color_order not in COLOR_ORDERS:
            raise ModelCardError(f"color_order must be one of {COLOR_ORDERS}, got {_shown(self.color_order)}")
        if self.resize not in RESIZE_RULES:
            raise ModelCardError(f"resize must be one of {RESIZE_RULES}, got {_shown(self.resize)}")
        if self.interpolation not in INTERPOLATIONS:
            raise ModelCardError(f"interpolation must be one of {INTERPOLATIONS}, got {_shown(self.interpolation)}")
        if not (_is_number(self.crop_fraction) and 0.05 <= self.crop_fraction <= 1.0):
            raise ModelCardError(f"crop_fraction must be a number in [0.05, 1], got {_shown(self.crop_fraction)}")
        for name, low in (("mean", -MAX_NORMALISATION), ("std", MIN_STD)):
            value = getattr(self, name)
            if not (isinstance(value, tuple) and len(value) == 3
                    and all(_is_number(v) and low <= v <= MAX_NORMALISATION for v in value)):
                raise ModelCardError(
                    f"{name} must be three numbers in [{low:g}, {MAX_NORMALISATION:g}], got {_shown(value)}")
        if not isinstance(self.normalization_in_graph, bool):
            raise ModelCardError(
                f"normalization_in_graph must be true or false, got {_shown(self.normalization_in_graph)}")


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

    def __post_init__(self) -> None:
        check_labels(self.labels)
        for name in ("name", "arch", "quantization"):
            problem = text_problem(getattr(self, name))
            if problem:
                raise ModelCardError(f"{name} {problem}")
        if not isinstance(self.extra, dict):
            raise ModelCardError("extra must be an object")
        if _nesting(self.extra) > MAX_CARD_NESTING:
            raise ModelCardError(f"extra is nested more than {MAX_CARD_NESTING} levels deep")
        if not _is_int(self.format_version) or self.format_version < 1:
            raise ModelCardError(f"format_version must be a positive integer, got {_shown(self.format_version)}")

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
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ModelCardError(f"{source}: model card is not valid JSON ({type(exc).__name__}: {exc})") from None
        if not isinstance(data, dict):
            raise ModelCardError(f"{source}: model card must be a JSON object")
        try:
            version = data.get("format_version", CARD_FORMAT_VERSION)
            if _is_int(version) and version > CARD_FORMAT_VERSION:
                raise ModelCardError(
                    f"card format_version {version!r} is newer than this edgeshop reads "
                    f"({CARD_FORMAT_VERSION}); upgrade edgeshop"
                )
            labels = data["labels"]
            if not isinstance(labels, list):
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
            return cls(
                labels=tuple(labels),
                input=InputSpec(**spec),
                name=data.get("name", "edgeshop-model"),
                arch=data.get("arch", ""),
                quantization=data.get("quantization", "float32"),
                extra=data.get("extra", {}),
                format_version=version,
            )
        except ModelCardError as exc:
            raise ModelCardError(f"{source}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelCardError(f"{source}: malformed model card ({type(exc).__name__}: {exc})") from None


DISPLAY_NAME_MAX = 80


def display_name(card: ModelCard | None) -> str:
    """The model's name as people see it (the browser page, reports).

    ``extra["display_name"]``, set by ``edgeshop-export --name`` (default: the training data
    folder's name). Older cards have none, and their ``name`` is the run folder's (e.g.
    ``grocery71_cosine``), which means nothing to a store employee: they are called by what
    they recognise instead.
    """
    if card is None:
        return "Image classifier"
    name = card.extra.get("display_name")
    if isinstance(name, str) and display_name_problem(name) is None:
        return name
    count = len(card.labels)
    return f"Product classifier ({count} product{'' if count == 1 else 's'})"


# Folder names that say which split, not which shop: the data folder's parent names it instead.
_SPLIT_FOLDERS = frozenset({"train", "training", "images", "photos", "data", "dataset", "all"})


def default_display_name(data: str | Path) -> str | None:
    """The display name a model trained on the folder ``data`` gets by default: the folder's
    name (``Grocery/train`` -> ``Grocery``); None if that is not a usable name."""
    folder = Path(data).expanduser().resolve()
    if folder.name.lower() in _SPLIT_FOLDERS and folder.parent.name:
        folder = folder.parent
    return folder.name if display_name_problem(folder.name) is None else None


def display_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a display name, or None when it can."""
    problem = text_problem(name)
    if problem:
        return problem
    if not name.strip() or name != name.strip():  # type: ignore[union-attr]
        return "must be non-empty, without leading or trailing spaces"
    if len(name) > DISPLAY_NAME_MAX:  # type: ignore[arg-type]
        return f"must be at most {DISPLAY_NAME_MAX} characters"
    return None


def text_problem(text: object) -> str | None:
    """Why ``text`` cannot be a label or name shown to people, or None when it can.

    Control characters (line breaks, ESC and the terminal sequences it starts, C1 codes)
    and lone surrogates are refused rather than cleaned where shown: labels reach stdout,
    JSON, logs, overlays and labels.txt, which standard clients read without edgeshop,
    so refusing them in every card is the one place that covers all of those.
    """
    if not isinstance(text, str):
        return f"must be a string, got {_shown(text)}"
    bad = sorted({c for c in text if unicodedata.category(c) in ("Cc", "Cs")})
    if bad:
        kind = "line breaks or other control characters" if {"\n", "\r"} & set(bad) else "control characters"
        return f"must not contain {kind}: found {_shown(''.join(bad))} in {_shown(text)}"
    return None


def check_labels(labels: object) -> None:
    """Labels are a non-empty tuple/list of strings a terminal and labels.txt show as they are."""
    if not isinstance(labels, (tuple, list)) or not labels:
        raise ModelCardError("labels must be a non-empty list of strings")
    for label in labels:
        problem = text_problem(label)
        if problem:
            raise ModelCardError(f"label {problem}")


def _shown(value: object, limit: int = 60) -> str:
    """``value`` as it stands in an error line: repr (escapes control characters), cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    """A finite int or float; bools (JSON true/false) and NaN/inf are not numbers here."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _nesting(value: object) -> int:
    """How deeply lists/dicts nest in ``value``, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            if depth <= MAX_CARD_NESTING:
                stack.extend((child, depth + 1) for child in children)
    return deepest


def split_archive(content: bytes, source: str = "model") -> tuple[bytes, dict[str, bytes]]:
    """The flatbuffer of a model file and the members of the archive appended to it ({} when none).

    Every member is read with the limits of `edgeshop.tflite.archive`; a damaged or
    oversized archive is a ``ModelCardError`` naming ``source``.
    """
    archive = open_archive(content, source)
    if archive is None:
        return content, {}
    with archive:
        infos = archive.infolist()
        if not infos:
            return content, {}
        # header_offset is where a member starts in `content` (zipfile adds any prefix's
        # length), so the first member marks the end of the flatbuffer.
        start = min(info.header_offset for info in infos)
        if not 0 <= start <= len(content):
            raise ModelCardError(f"{source}: the archive appended to the model places a member at {start}, "
                                 f"outside the file's {len(content)} bytes")
        members: dict[str, bytes] = {}
        total = 0
        for info in infos:
            members[info.filename] = read_member(archive, info, source)
            total += len(members[info.filename])
            if total > MAX_ARCHIVE_BYTES:
                raise ModelCardError(f"{source}: the archive appended to the model inflates to more than "
                                     f"{MAX_ARCHIVE_BYTES} bytes")
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
    check_labels(labels)  # a line break would shift every later label by one
    return ("\n".join(labels) + "\n").encode("utf-8")


def embed_card(model_bytes: bytes, card: ModelCard) -> bytes:
    """The model with ``card`` and its labels.txt in its archive; other archive members are kept."""
    flatbuffer, members = split_archive(model_bytes)
    members[LABELS_ENTRY] = labels_file(card.labels)
    members[CARD_ENTRY] = card.to_json().encode("utf-8")
    return attach_archive(flatbuffer, members)


def read_card(model_bytes: bytes, source: str = "model") -> ModelCard | None:
    """The card inside ``model_bytes``, or None when the model carries none.

    Any bytes give a card, None, or one ``ModelCardError`` naming ``source``.
    """
    archive = open_archive(model_bytes, source)
    if archive is None:
        return None
    with archive:
        names = [info.filename for info in archive.infolist()]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:  # readers differ on which copy they take: edgeshop the last, others the first
            raise ModelCardError(f"{source}: the archive appended to the model holds {repeated[0]!r} more than "
                                 "once; re-export the model with edgeshop-export")
        try:
            info = archive.getinfo(CARD_ENTRY)
        except KeyError:
            return None
        text = read_member(archive, info, source, MAX_CARD_BYTES)
        listed = read_member(archive, archive.getinfo(LABELS_ENTRY), source) if LABELS_ENTRY in names else None
    card = ModelCard.from_json(text, source=source)
    if listed is not None:
        _check_labels_file(listed, card.labels, source)
    return card


def _check_labels_file(data: bytes, labels: tuple[str, ...], source: str) -> None:
    """labels.txt (what MediaPipe, the browser page and phones show) says what the card says
    (what edgeshop shows); otherwise the same frame gets two different product names."""
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    if tuple(lines) == tuple(labels):
        return
    if len(lines) != len(labels):
        raise ModelCardError(f"{source}: its labels.txt lists {len(lines)} labels but its card {len(labels)}; "
                             "standard clients and edgeshop would name classes differently; re-export the model "
                             "with edgeshop-export")
    row = next(i for i, (a, b) in enumerate(zip(lines, labels, strict=True)) if a != b)
    raise ModelCardError(f"{source}: its labels.txt and its card disagree at class {row}: labels.txt says "
                         f"{_shown(lines[row])}, the card says {_shown(labels[row])} (standard clients read "
                         "labels.txt, edgeshop the card); re-export the model with edgeshop-export")
