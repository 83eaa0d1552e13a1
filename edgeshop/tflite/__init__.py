"""The model-file format, TF-free: the .tflite flatbuffer read and checked, the card and labels
archive inside it, the classifier layer's weights rewritten in place.

Stdlib, numpy and the flatbuffers schema only: no interpreter (that is the runtime's) and no
TensorFlow. Every change edgeshop makes to a finished model file goes through here. The names in
``__all__`` are the public API (``from edgeshop.tflite import read_card``); the modules are
private. Each name is imported when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeshop._lazy import lazy_names

if TYPE_CHECKING:  # what documentation tools and type checkers see; at run time, __getattr__ below
    from edgeshop.tflite.head_weights import HeadWeights, read_head_weights, with_head_weights
    from edgeshop.tflite.model_check import check_model
    from edgeshop.tflite.modelcard import INTERPOLATIONS, InputSpec, ModelCard, display_name, embed_card, read_card
    from edgeshop.tflite.tflite_head import softmax_beta, with_softmax_beta

# Public name -> the module that defines it, imported on first use (PEP 562).
_LAZY = {
    # the card and labels inside a model
    "ModelCard": "edgeshop.tflite.modelcard",
    "InputSpec": "edgeshop.tflite.modelcard",
    "read_card": "edgeshop.tflite.modelcard",
    "embed_card": "edgeshop.tflite.modelcard",
    "display_name": "edgeshop.tflite.modelcard",
    "INTERPOLATIONS": "edgeshop.tflite.modelcard",
    # the classifier layer
    "HeadWeights": "edgeshop.tflite.head_weights",
    "read_head_weights": "edgeshop.tflite.head_weights",
    "with_head_weights": "edgeshop.tflite.head_weights",
    "softmax_beta": "edgeshop.tflite.tflite_head",
    "with_softmax_beta": "edgeshop.tflite.tflite_head",
    # checks of an untrusted file
    "check_model": "edgeshop.tflite.model_check",
}

__all__ = [
    "HeadWeights", "INTERPOLATIONS", "InputSpec", "ModelCard", "check_model", "display_name", "embed_card",
    "read_card", "read_head_weights", "softmax_beta", "with_head_weights", "with_softmax_beta",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
