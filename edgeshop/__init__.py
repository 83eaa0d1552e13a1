"""edgeshop: product photos in, a compressed on-device shelf classifier out.

The public names (``edgeshop.Classifier``, ``edgeshop.ModelCard``, ...) are the runtime's; they
are imported when first used, so importing any lower layer (``edgeshop.tflite``) does not pull
the runtime in. Nothing here imports TensorFlow; training lives in ``edgeshop.train`` (extra
``[train]``). The layers and the import rule: docs/architecture.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgeshop.errors import EdgeshopError, ImageInputError, ModelCardError, ModelLoadError

if TYPE_CHECKING:  # what documentation tools and type checkers see; at run time, __getattr__ below
    from edgeshop.runtime.classifier import Classifier, Prediction
    from edgeshop.tflite.modelcard import InputSpec, ModelCard

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first use (PEP 562).
_LAZY = {
    "Classifier": "edgeshop.runtime.classifier",
    "Prediction": "edgeshop.runtime.classifier",
    "InputSpec": "edgeshop.tflite.modelcard",
    "ModelCard": "edgeshop.tflite.modelcard",
}

__all__ = [
    "Classifier",
    "EdgeshopError",
    "ImageInputError",
    "InputSpec",
    "ModelCard",
    "ModelCardError",
    "ModelLoadError",
    "Prediction",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'edgeshop' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
