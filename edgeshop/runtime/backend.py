"""The only place a TFLite interpreter is imported.

Preference order for ``backend="auto"``: ai-edge-litert (maintained, Python 3.10+),
then tflite-runtime (frozen at 2.14), then TensorFlow's own tf.lite, which is only
tried when named or when nothing lighter is installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from edgeshop.errors import EdgeshopError, ModelLoadError
from edgeshop.native_logs import hidden_chatter

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


def make_interpreter(model_content: bytes, num_threads: int | None, backend: str = "auto", source: str = "model"):
    """An allocated interpreter for ``model_content``; loader failures become ModelLoadError."""
    # Checked here: the interpreter's own ValueError would read as a broken model file.
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                    or num_threads < 1):
        raise EdgeshopError(f"num_threads (--threads) must be a whole number >= 1, or None for the "
                            f"interpreter's default; got {num_threads!r}")
    name, cls = interpreter_class(backend)
    try:
        with hidden_chatter():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" INFO line
            interpreter = cls(model_content=model_content, num_threads=num_threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(
            f"{source}: {name} could not load this file as a TFLite model ({str(exc).strip().splitlines()[0]}); "
            "re-export it with edgeshop-export"
        ) from None
    return name, interpreter
