"""The only place a TFLite interpreter is imported.

Preference order for ``backend="auto"``: ai-edge-litert (maintained, Python 3.10+),
then tflite-runtime (frozen at 2.14), then TensorFlow's own tf.lite, which is only
tried when named or when nothing lighter is installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from edgeshop.errors import EdgeshopError, ModelLoadError
from edgeshop.runtime.model_check import check_model

BACKENDS = ("litert", "tflite_runtime", "tensorflow")
_MODULES = {
    "litert": "ai_edge_litert.interpreter",
    "tflite_runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow.lite.python.interpreter",  # imported by name only, never at edgeshop import
}


def interpreter_class(backend: str = "auto") -> tuple[str, Any]:
    """(backend name, Interpreter class) for ``backend``, or a clear error."""
    if backend != "auto" and backend not in BACKENDS:
        raise EdgeshopError(f"backend must be 'auto' or one of {BACKENDS}, got {backend!r}")
    names = BACKENDS if backend == "auto" else (backend,)
    errors = []
    for name in names:
        try:
            module = importlib.import_module(_MODULES[name])
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        return name, module.Interpreter
    raise EdgeshopError(
        "no TFLite interpreter is installed (" + "; ".join(errors) + "); install one with: "
        "pip install ai-edge-litert   (or tflite-runtime on Python <= 3.11)"
    )


def make_interpreter(model_content: bytes, num_threads: int | None, backend: str = "auto", source: str = "model",
                     *, checked: bool = False):
    """An allocated interpreter for ``model_content``; loader failures become ModelLoadError.

    The file is checked first (`model_check`) unless the caller has just done so (``checked``):
    LiteRT crashes the process on some crafted files instead of raising."""
    # Checked here: the interpreter's own ValueError would read as a broken model file.
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                    or num_threads < 1):
        raise EdgeshopError(f"num_threads (--threads) must be a whole number >= 1, or None for the "
                            f"interpreter's default; got {num_threads!r}")
    if not checked:
        check_model(model_content, source)
    name, cls = interpreter_class(backend)
    try:
        interpreter = cls(model_content=model_content, num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise load_failure(source, name, exc) from None
    return name, interpreter


def load_failure(source: str, backend: str, exc: Exception) -> ModelLoadError:
    """The interpreter's own refusal of a file, as one line naming it."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ModelLoadError(f"{source}: {backend} could not load this file as a TFLite model ({first}); "
                          "re-export it with edgeshop-export")
