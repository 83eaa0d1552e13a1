"""One exception family, so callers can catch ``EdgeshopError`` and show its message.

Every message names the file or value at fault and says what to do about it.
"""

from __future__ import annotations


class EdgeshopError(Exception):
    """Base class of every error edgeshop raises on purpose."""


class ModelLoadError(EdgeshopError):
    """A model file is missing, unreadable, not a TFLite model, or inconsistent."""


class ModelCardError(ModelLoadError):
    """The metadata stored inside a model is malformed, oversized or inconsistent."""


class ImageInputError(EdgeshopError, ValueError):
    """An image handed to the runtime is None, empty, or of an unusable shape/dtype."""


class DataError(EdgeshopError):
    """A dataset folder, split file or manifest cannot be used for training."""


class MissingExtraError(EdgeshopError, ImportError):
    """An optional dependency group is not installed."""

    def __init__(self, extra: str, missing: str) -> None:
        super().__init__(
            f"this feature needs the '{extra}' extra ({missing} is not importable); "
            f"install it with: pip install 'edgeshop[{extra}]'"
        )


class OutputError(EdgeshopError, OSError):
    """An output cannot be written, or must not be replaced (edgeshop/_io.py). An OSError too, so
    code that caught the write's own OSError still catches it."""


class OverwriteError(OutputError, FileExistsError):
    """An output file exists and the caller did not ask to replace it."""

    def __init__(self, path: object) -> None:
        super().__init__(f"{path} already exists; pass --force to overwrite it")
