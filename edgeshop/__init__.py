"""edgeshop: product photos in, a compressed on-device shelf classifier out.

The top-level package is the runtime (numpy + OpenCV + a TFLite interpreter); it never
imports TensorFlow. Training lives in ``edgeshop.train`` (extra ``[train]``).
"""

from edgeshop.errors import EdgeshopError, ImageInputError, ModelCardError, ModelLoadError
from edgeshop.runtime.classifier import Classifier, Prediction
from edgeshop.runtime.modelcard import InputSpec, ModelCard

__version__ = "0.1.0"

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
