"""edgeshop: product photos in, a compressed on-device shelf classifier out.

This package is the runtime's public API: the names in ``__all__`` are what applications,
examples and studies import (``from edgeshop import Classifier, open_source, Smoother``); the
modules under ``edgeshop.runtime`` are private. Runtime names are imported when first used, so
importing any lower layer (``edgeshop.tflite``) does not pull the runtime in. Nothing here imports
TensorFlow; training lives in ``edgeshop.train`` (extra ``[train]``). The other layers have their
own public names: ``edgeshop.tflite``, ``edgeshop.data``, ``edgeshop.report``, ``edgeshop.adapt``,
``edgeshop.train``. The layers and the import rule: docs/architecture.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgeshop._lazy import lazy_names
from edgeshop.errors import (
    DataError,
    EdgeshopError,
    ImageInputError,
    MissingExtraError,
    ModelCardError,
    ModelLoadError,
    OutputError,
    OverwriteError,
)

if TYPE_CHECKING:  # what documentation tools and type checkers see; at run time, __getattr__ below
    from edgeshop._io import write_bytes_atomic, write_json_atomic
    from edgeshop.runtime.annotate import annotate
    from edgeshop.runtime.audit import audit_model, format_audit
    from edgeshop.runtime.backend import interpreter_class, make_interpreter, plain_interpreter
    from edgeshop.runtime.bench import (
        LatencyStats,
        benchmark_model,
        invoke_callable,
        machine_info,
        time_calls,
        time_interleaved,
        time_models,
    )
    from edgeshop.runtime.classifier import Classifier, Prediction
    from edgeshop.runtime.cpu_class import detect_cpu_class, recommended_format
    from edgeshop.runtime.preprocess import FITS, FRAME_FIT, SLOT_FIT, preprocess, read_image
    from edgeshop.runtime.smoothing import SETTLE_SECONDS, SlotEvent, Smoothed, Smoother, check_settings
    from edgeshop.runtime.stream import Frame, ImageFiles, VideoFile, open_source
    from edgeshop.runtime.unknown_score import class_prototypes, prototype_score
    from edgeshop.runtime.video_out import VideoOutput
    from edgeshop.tflite.modelcard import InputSpec, ModelCard
    from edgeshop.utils import cache_dir

__version__ = "0.1.0"

# The 10-product demo subset of the Grocery Store dataset (MIT licence), shipped as package data:
# train/ and test/ class folders, what `edgeshop demo` trains on.
DEMO_DATA = Path(__file__).resolve().parent / "demo_data"

# Public name -> the module that defines it, imported on first use (PEP 562).
_LAZY = {
    # classifying
    "Classifier": "edgeshop.runtime.classifier",
    "Prediction": "edgeshop.runtime.classifier",
    "InputSpec": "edgeshop.tflite.modelcard",
    "ModelCard": "edgeshop.tflite.modelcard",
    "FITS": "edgeshop.runtime.preprocess",
    "FRAME_FIT": "edgeshop.runtime.preprocess",
    "SLOT_FIT": "edgeshop.runtime.preprocess",
    "preprocess": "edgeshop.runtime.preprocess",
    "read_image": "edgeshop.runtime.preprocess",
    "class_prototypes": "edgeshop.runtime.unknown_score",
    "prototype_score": "edgeshop.runtime.unknown_score",
    # cameras, smoothing, drawing
    "Frame": "edgeshop.runtime.stream",
    "ImageFiles": "edgeshop.runtime.stream",
    "VideoFile": "edgeshop.runtime.stream",
    "open_source": "edgeshop.runtime.stream",
    "SETTLE_SECONDS": "edgeshop.runtime.smoothing",
    "SlotEvent": "edgeshop.runtime.smoothing",
    "Smoothed": "edgeshop.runtime.smoothing",
    "Smoother": "edgeshop.runtime.smoothing",
    "check_settings": "edgeshop.runtime.smoothing",
    "annotate": "edgeshop.runtime.annotate",
    "VideoOutput": "edgeshop.runtime.video_out",
    # measuring a model on this device
    "LatencyStats": "edgeshop.runtime.bench",
    "benchmark_model": "edgeshop.runtime.bench",
    "invoke_callable": "edgeshop.runtime.bench",
    "machine_info": "edgeshop.runtime.bench",
    "time_calls": "edgeshop.runtime.bench",
    "time_interleaved": "edgeshop.runtime.bench",
    "time_models": "edgeshop.runtime.bench",
    "interpreter_class": "edgeshop.runtime.backend",
    "make_interpreter": "edgeshop.runtime.backend",
    "plain_interpreter": "edgeshop.runtime.backend",
    "detect_cpu_class": "edgeshop.runtime.cpu_class",
    "recommended_format": "edgeshop.runtime.cpu_class",
    "audit_model": "edgeshop.runtime.audit",
    "format_audit": "edgeshop.runtime.audit",
    # files
    "write_bytes_atomic": "edgeshop._io",
    "write_json_atomic": "edgeshop._io",
    "cache_dir": "edgeshop.utils",
}

__all__ = [
    "Classifier", "DEMO_DATA", "DataError", "EdgeshopError", "FITS", "FRAME_FIT", "Frame", "ImageFiles",
    "ImageInputError", "InputSpec", "LatencyStats", "MissingExtraError", "ModelCard", "ModelCardError",
    "ModelLoadError", "OutputError", "OverwriteError", "Prediction", "SETTLE_SECONDS", "SLOT_FIT", "SlotEvent",
    "Smoothed", "Smoother", "VideoFile", "VideoOutput", "__version__", "annotate", "audit_model", "benchmark_model",
    "cache_dir", "check_settings", "class_prototypes", "detect_cpu_class", "format_audit", "interpreter_class",
    "invoke_callable", "machine_info", "make_interpreter", "open_source", "plain_interpreter", "preprocess",
    "prototype_score", "read_image", "recommended_format", "time_calls", "time_interleaved", "time_models",
    "write_bytes_atomic", "write_json_atomic",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
