"""Saving Keras models and weights atomically, and loading weights (never model code)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from edgeshop.errors import ModelLoadError
from edgeshop.train._keras import keras
from edgeshop.utils import write_bytes_atomic


def save_model(model: keras.Model, path: Path) -> None:
    """Write ``path`` so that a crash mid-write leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    model.save(tmp)
    os.replace(tmp, path)


def save_weights(model: keras.Model, path: Path) -> None:
    """All weights in topology order as a plain .npz (atomic; no pickle, no h5py).

    Plain arrays also load into tf.distribute-mirrored models, whose sync-on-read
    BatchNorm statistics cannot be assigned from h5py's lazy datasets.
    """
    write_arrays(path, model.get_weights())


def load_weights(model: keras.Model, path: Path) -> None:
    path = Path(path)
    arrays, _ = read_arrays(path)
    expected = model.get_weights()
    if len(arrays) != len(expected) or any(a.shape != e.shape for a, e in zip(arrays, expected, strict=True)):
        raise ModelLoadError(f"{path}: weights do not fit this model (was the run's config changed?)")
    model.set_weights(arrays)


def write_arrays(path: Path, arrays: list[np.ndarray], **named: np.ndarray) -> None:
    """An .npz of ``arrays`` in order (arr_0, arr_1, ...) plus ``named`` extras, atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, *arrays, **named)
    write_bytes_atomic(path, buffer.getvalue())


def read_arrays(path: Path) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """What write_arrays wrote: the ordered arrays and the named extras."""
    try:
        with np.load(path, allow_pickle=False) as data:
            ordered = [f"arr_{i}" for i in range(len(data.files)) if f"arr_{i}" in data.files]
            return [data[k] for k in ordered], {k: data[k] for k in data.files if k not in ordered}
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{path}: cannot read weights ({exc})") from None
