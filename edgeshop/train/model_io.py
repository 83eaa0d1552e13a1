"""Saving and loading Keras models: atomic writes, safe mode, tfmot scopes."""

from __future__ import annotations

import os
from pathlib import Path

from edgeshop.errors import ModelLoadError
from edgeshop.train._keras import keras, tfmot


def save_model(model: keras.Model, path: Path) -> None:
    """Write ``path`` so that a crash mid-write leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    model.save(tmp)
    os.replace(tmp, path)


def save_weights(model: keras.Model, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name.removesuffix('.weights.h5')}.partial.weights.h5")
    model.save_weights(tmp)
    os.replace(tmp, path)


def load_model(path: Path, compile: bool = False) -> keras.Model:
    """Load a .keras model in safe mode (no deserialised lambdas), pruned/QAT aware."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: Keras model not found (did edgeshop-train finish?)")
    try:
        with tfmot.quantization.keras.quantize_scope(), tfmot.sparsity.keras.prune_scope():
            return keras.models.load_model(path, compile=compile, safe_mode=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: cannot load Keras model ({exc})") from None
