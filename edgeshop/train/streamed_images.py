"""Training images streamed from disk: the file list is shuffled, then each file is decoded
when the step that needs it comes near (``--input-pipeline stream``).

Memory holds the list of paths plus a few batches in flight, whatever the number of
images. Each file goes through ``datasets.decode_sample``, the very function the
in-memory pipeline uses (the runtime's numpy/OpenCV preprocessing, through
``tf.numpy_function``), so both pipelines give the model the same pixels; with the same
seed and no unreadable file they even give the same batches in the same order (the shuffle
permutes indices the same way whatever the elements are). An unreadable file is dropped
from the stream and recorded in a ``SkipLog`` the first time it is met, so it is counted
during the first epoch rather than by a pre-pass that decodes everything twice.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeshop.data import Sample, decode_sample
from edgeshop.tflite.modelcard import InputSpec
from edgeshop.train._keras import tf

# With --cache-dir the cached order is fixed, so each epoch reshuffles within a window of
# this many decoded images (at 288 px, 249 KB each: 64 MB).
CACHE_SHUFFLE_WINDOW = 256


class SkipLog:
    """Unreadable files met while streaming, with the reason (thread-safe: decoding runs on
    tf.data's threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reasons: dict[Path, str] = {}

    def add(self, path: Path, reason: str) -> None:
        with self._lock:
            self._reasons.setdefault(path, reason)

    def items(self) -> list[tuple[Path, str]]:
        with self._lock:
            return sorted(self._reasons.items())

    def __len__(self) -> int:
        with self._lock:
            return len(self._reasons)


def stream_images(
    samples: Sequence[Sample],
    class_names: Sequence[str],
    spec: InputSpec,
    skips: SkipLog,
    seed: int | None = None,
    shard: tuple[int, int] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tf.data.Dataset:
    """(pixels H x W x 3 uint8, label int32) per readable sample, decoded in parallel.

    ``seed``: reshuffle the file list every epoch with it (None: file order). ``shard``:
    (count, index) keeps this worker's share of the shuffled list (multi-worker training).
    ``cache_dir``: write the decoded pixels there during the first epoch and read them
    back afterwards (the file order is then shuffled once, and each epoch reshuffles within
    a window of ``CACHE_SHUFFLE_WINDOW`` images)."""
    index = {name: i for i, name in enumerate(class_names)}
    paths = np.array([os.fsencode(str(s.path)) for s in samples], dtype=bytes)
    labels = np.array([index[s.label] for s in samples], dtype=np.int32)
    height, width = spec.height, spec.width

    def decode(path: bytes) -> tuple[np.ndarray, bool]:
        file = Path(os.fsdecode(path))
        result = decode_sample(file, spec)
        if isinstance(result, str):
            skips.add(file, result)
            return np.zeros((height, width, 3), np.uint8), False
        return result, True

    def load(path, label):
        pixels, ok = tf.numpy_function(decode, [path], (tf.uint8, tf.bool), stateful=False)
        pixels.set_shape((height, width, 3))
        ok.set_shape(())
        return pixels, label, ok

    data = tf.data.Dataset.from_tensor_slices((paths, labels))
    if seed is not None:
        data = data.shuffle(len(samples), seed=seed, reshuffle_each_iteration=cache_dir is None)
    if shard is not None:
        data = data.shard(*shard)
    data = data.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    data = data.filter(_readable).map(_without_flag)
    if cache_dir is not None:
        data = data.cache(str(cache_file(cache_dir, samples, spec, seed, shard)))
        if seed is not None:
            data = data.shuffle(CACHE_SHUFFLE_WINDOW, seed=seed, reshuffle_each_iteration=True)
    return data


def _readable(pixels, label, ok):
    return ok


def _without_flag(pixels, label, ok):
    return pixels, label


def cache_file(cache_dir: str | os.PathLike[str], samples: Sequence[Sample], spec: InputSpec, seed: int | None,
               shard: tuple[int, int] | None) -> Path:
    """The cache's file prefix: named after everything its content depends on (files, sizes,
    preprocessing, order), so a changed dataset or setting never reads a stale cache."""
    key = hashlib.sha1()
    for sample in samples:
        try:
            stamp = sample.path.stat()
            key.update(f"{sample.path}\0{sample.label}\0{stamp.st_size}\0{stamp.st_mtime_ns}\n".encode())
        except OSError:
            key.update(f"{sample.path}\0missing\n".encode())
    key.update(f"{spec.height}x{spec.width} {spec.interpolation} {spec.color_order} {spec.resize} "
               f"{spec.crop_fraction} seed={seed} shard={shard}".encode())
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / f"edgeshop-{key.hexdigest()[:16]}"
    # A run killed mid-epoch leaves a lockfile behind and no index: tf.data would refuse to
    # cache there again ("concurrent caching iterator"), so a stale one is removed.
    if not Path(f"{prefix}.index").exists():
        for stale in folder.glob(f"{prefix.name}*.lockfile"):
            stale.unlink(missing_ok=True)
    return prefix
