"""The only place a TFLite interpreter is imported.

Preference order for ``backend="auto"``: ai-edge-litert (maintained, Python 3.10+),
then tflite-runtime (frozen at 2.14), then TensorFlow's own tf.lite, which is only
tried when named or when nothing lighter is installed.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from edgeshop.errors import EdgeshopError, ModelLoadError
from edgeshop.native_logs import hidden_chatter
from edgeshop.tflite.model_check import MAX_ACTIVATION_BYTES, check_model

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


def make_interpreter(model_content: bytes, threads: int | None, backend: str = "auto", source: str = "model",
                     *, checked: bool = False):
    """An allocated interpreter for ``model_content``; loader failures become ModelLoadError.

    The file is checked first (`model_check`) unless the caller has just done so (``checked``):
    LiteRT crashes the process on some crafted files instead of raising."""
    # Checked here: the interpreter's own ValueError would read as a broken model file.
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise EdgeshopError(f"threads (--threads) must be a whole number >= 1, or None for the "
                            f"interpreter's default; got {threads!r}")
    if not checked:
        check_model(model_content, source)
    # XNNPACK plans and touches its memory while allocating (a 4000 x 4000 input: 670 MB before
    # the first frame); the plain kernels compute the same tensor shapes without touching them.
    check_tensor_memory(plain_interpreter(model_content, backend, source, checked=True), source)
    name, cls = interpreter_class(backend)
    try:
        with hidden_chatter():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" INFO line
            interpreter = cls(model_content=model_content, num_threads=threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise load_failure(source, name, exc) from None
    return name, interpreter


def plain_interpreter(model_content: bytes, backend: str = "auto", source: str = "model", *, checked: bool = False):
    """An allocated interpreter without the default XNNPACK delegate (ops run as written)."""
    if not checked:
        check_model(model_content, source)  # before LiteRT, which crashes on some crafted files
    name, cls = interpreter_class(backend)
    module = importlib.import_module(cls.__module__)
    resolver = getattr(module, "OpResolverType", None)
    kwargs = {}
    if resolver is not None:
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        with hidden_chatter():
            interpreter = cls(model_content=model_content, **kwargs)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise load_failure(source, name, exc) from None
    return interpreter


def check_tensor_memory(interpreter: Any, source: str) -> None:
    """The tensors an allocated interpreter computes fit MAX_ACTIVATION_BYTES (their shapes are
    the ones its kernels derived, not the ones the file declares)."""
    total = 0
    for details in interpreter.get_tensor_details():
        total += math.prod(int(d) for d in details["shape"]) * np.dtype(details["dtype"]).itemsize
    if total > MAX_ACTIVATION_BYTES:
        raise ModelLoadError(f"{source}: running it needs {total >> 20} MB of tensors (at most "
                             f"{MAX_ACTIVATION_BYTES >> 20} MB are allowed, to keep the runtime under 300 MB); "
                             "export the model at a smaller input size")


@contextlib.contextmanager
def run_failures(source: str, backend: str) -> Iterator[None]:
    """set_tensor/invoke/get_tensor failures of a loaded model (e.g. 'Input tensor 9 lacks data')
    as one ModelLoadError naming the file; callers check their inputs before, so it is the model."""
    try:
        yield
    except (ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelLoadError(f"{source}: {backend} failed to run the model ({first}); "
                             "re-export it with edgeshop-export") from None


def load_failure(source: str, backend: str, exc: Exception) -> ModelLoadError:
    """The interpreter's own refusal of a file, as one line naming it."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ModelLoadError(f"{source}: {backend} could not load this file as a TFLite model ({first}); "
                          "re-export it with edgeshop-export")
