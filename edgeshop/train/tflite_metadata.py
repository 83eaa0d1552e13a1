"""Standard TFLite Metadata: what MediaPipe Tasks and the TFLite Task Library read from a model.

The `TFLITE_METADATA` buffer of the flatbuffer (a `ModelMetadata` flatbuffer, identifier
`M001`) describes the input image (RGB, value range, the normalisation a client applies
before feeding it) and the output (score range, labels file). Without it, or with a wrong
mean/std, those clients refuse the model or silently feed it the wrong values.

MediaPipe's own writer (`mediapipe.tasks.python.metadata.metadata_writers`) fails to import
in mediapipe 1.2.x (its native `_pywrap_metadata_version` is not in the wheel), so this
module builds the same tables with the schema's generated Python (vendored in
`edgeshop._vendor`, the same code MediaPipe ships) and `flatbuffers`,
as its `image_classifier.MetadataWriter` would: name and description, an image input with
`NormalizationOptions` and `ImageProperties(RGB)`, a classification output with the labels
attached as `TENSOR_AXIS_LABELS`. The archive holding labels.txt is written by
`edgeshop.tflite.modelcard`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeshop import __version__
from edgeshop.errors import EdgeshopError
from edgeshop.tflite.modelcard import CARD_ENTRY, LABELS_ENTRY, ModelCard

METADATA_NAME = "TFLITE_METADATA"  # the Model.metadata entry standard readers look up
METADATA_IDENTIFIER = b"M001"
TFLITE_IDENTIFIER = b"TFL3"
# Every table used here exists since metadata schema 1.0.0 (no process units on the
# subgraph, tensor groups, vocabulary files or custom metadata, which raise it; see
# MediaPipe's metadata_version.cc), so readers from 1.0.0 on understand all of it.
MIN_PARSER_VERSION = "1.0.0"


@dataclass(frozen=True)
class Provenance:
    """Who made the model and under which terms; written into the metadata for any client to show."""

    author: str = ""
    license: str = ""
    description: str = ""


def _metadata_schema():
    # Deferred: the generated schema is 3,000+ lines, needed only when metadata is written or read.
    from edgeshop._vendor import metadata_schema_py_generated

    return metadata_schema_py_generated


def _image_input(md, card: ModelCard, dtype: str):
    spec = card.input
    tensor = md.TensorMetadataT()
    tensor.name = "image"
    tensor.description = (
        f"{spec.height}x{spec.width} {spec.color_order} image, pixel values 0-255"
        + ("; the model normalises them itself" if spec.normalization_in_graph else "")
    )
    tensor.content = md.ContentT()
    tensor.content.contentPropertiesType = md.ContentProperties.ImageProperties
    tensor.content.contentProperties = md.ImagePropertiesT()
    tensor.content.contentProperties.colorSpace = md.ColorSpaceType.RGB
    # Clients compute (pixel - mean) / std before a float input. edgeshop graphs normalise
    # themselves, so they must be fed raw pixels: mean 0, std 1. Any other values would
    # be applied a second time and give wrong scores without an error.
    mean = [0.0] if spec.normalization_in_graph else [float(v) for v in spec.mean]
    std = [1.0] if spec.normalization_in_graph else [float(v) for v in spec.std]
    unit = md.ProcessUnitT()
    unit.optionsType = md.ProcessUnitOptions.NormalizationOptions
    unit.options = md.NormalizationOptionsT()
    unit.options.mean, unit.options.std = mean, std
    tensor.processUnits = [unit]
    tensor.stats = md.StatsT()
    if dtype == "uint8":
        tensor.stats.min, tensor.stats.max = [0.0], [255.0]
    else:
        tensor.stats.min = [(0.0 - m) / s for m, s in zip(mean, std, strict=True)]
        tensor.stats.max = [(255.0 - m) / s for m, s in zip(mean, std, strict=True)]
    return tensor


def _score_output(md, card: ModelCard):
    tensor = md.TensorMetadataT()
    tensor.name = "probability"
    tensor.description = f"Probabilities of the {len(card.labels)} labels (softmax, sum 1)."
    tensor.content = md.ContentT()
    tensor.content.contentPropertiesType = md.ContentProperties.FeatureProperties
    tensor.content.contentProperties = md.FeaturePropertiesT()
    tensor.stats = md.StatsT()
    tensor.stats.min, tensor.stats.max = [0.0], [1.0]
    labels = md.AssociatedFileT()
    labels.name = LABELS_ENTRY
    labels.description = "Labels for categories that the model can recognize, one per line in output order."
    labels.type = md.AssociatedFileType.TENSOR_AXIS_LABELS
    tensor.associatedFiles = [labels]
    return tensor


def metadata_buffer(card: ModelCard, input_dtype: str, provenance: Provenance | None = None) -> bytes:
    """The ModelMetadata flatbuffer for an edgeshop classifier with ``card``."""
    import flatbuffers

    provenance = provenance or Provenance()
    if card.input.color_order != "RGB":
        raise EdgeshopError(f"standard TFLite Metadata describes RGB or grayscale inputs; this model takes "
                            f"{card.input.color_order}: retrain it with RGB input")
    md = _metadata_schema()
    model = md.ModelMetadataT()
    model.name = card.name
    model.description = provenance.description or (
        f"edgeshop image classifier ({card.arch or 'custom network'}, {card.quantization}): "
        f"{len(card.labels)} classes"
    )
    model.version = f"edgeshop {__version__}"
    model.author = provenance.author or None
    model.license = provenance.license or None
    model.minParserVersion = MIN_PARSER_VERSION
    card_file = md.AssociatedFileT()
    card_file.name = CARD_ENTRY
    card_file.description = "edgeshop model card (JSON): labels, input spec, provenance, validation figures."
    card_file.type = md.AssociatedFileType.UNKNOWN
    model.associatedFiles = [card_file]
    subgraph = md.SubGraphMetadataT()
    subgraph.name = "image_classifier"
    subgraph.inputTensorMetadata = [_image_input(md, card, input_dtype)]
    subgraph.outputTensorMetadata = [_score_output(md, card)]
    model.subgraphMetadata = [subgraph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), METADATA_IDENTIFIER)
    return bytes(builder.Output())


def with_metadata(flatbuffer: bytes, metadata: bytes) -> bytes:
    """``flatbuffer`` (no archive) with its TFLITE_METADATA buffer set to ``metadata``."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata, dtype=np.uint8)
    entries = [m for m in (model.metadata or []) if _name(m) == METADATA_NAME]
    if entries:  # replace in place: a second entry would leave readers to pick one
        model.buffers[entries[0].buffer] = buffer
    else:
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(flatbuffer: bytes) -> dict[str, Any] | None:
    """The standard metadata of a model as plain values (None when it has none), for checks and reports."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    entries = [m for m in (model.metadata or []) if _name(m) == METADATA_NAME]
    if not entries:
        return None
    md = _metadata_schema()
    raw = bytes(np.asarray(model.buffers[entries[0].buffer].data, dtype=np.uint8))
    if raw[4:8] != METADATA_IDENTIFIER:
        raise EdgeshopError(f"the {METADATA_NAME} buffer is not a metadata flatbuffer (identifier {raw[4:8]!r})")
    meta = md.ModelMetadataT.InitFromPackedBuf(raw, 0)
    subgraph = meta.subgraphMetadata[0]
    image, score = subgraph.inputTensorMetadata[0], subgraph.outputTensorMetadata[0]
    norm = image.processUnits[0].options if image.processUnits else None
    return {
        "name": _text(meta.name),
        "description": _text(meta.description),
        "version": _text(meta.version),
        "author": _text(meta.author),
        "license": _text(meta.license),
        "min_parser_version": _text(meta.minParserVersion),
        "model_files": [_text(f.name) for f in meta.associatedFiles or []],
        "input_color_space": image.content.contentProperties.colorSpace,
        "input_mean": [float(v) for v in norm.mean] if norm is not None else None,
        "input_std": [float(v) for v in norm.std] if norm is not None else None,
        "input_range": [float(image.stats.min[0]), float(image.stats.max[0])] if image.stats else None,
        "output_range": [float(score.stats.min[0]), float(score.stats.max[0])] if score.stats else None,
        "label_files": [(_text(f.name), int(f.type)) for f in score.associatedFiles or []],
    }


def _name(entry) -> str:
    return _text(entry.name)


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else (value or "")
