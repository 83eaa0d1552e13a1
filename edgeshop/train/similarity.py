"""Look-alike photos for the grouped validation split (``--val-grouping similarity``).

On Grocery the shots of one session (one bin, one light) are not neighbours in file order
and their thumbnails differ as much as any two photos of the class (camera moved, hand in
the frame), so pixels cannot find them. The pooled features of the ImageNet EfficientNet-Lite0
(shipped weights, frozen) can: two photos are look-alikes when their embeddings' distance
sqrt(2 * (1 - cosine)) is below ``EMBEDDING_DISTANCE``. The threshold was chosen on Grocery
with studies/grocery/split_leak.py (studies/grocery/figures/holdout/split_leak.json lists every value tried).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeshop.data import Sample, load_images
from edgeshop.tflite.modelcard import InputSpec

# 0.75: the hold-out's mean gap to val was +0.30 points over 3 seeds (0.7: +6.56, 0.8: -8.62).
EMBEDDING_DISTANCE = 0.75
EMBEDDING_SIZE = 192  # input side: a cheap pass (about 1 min for Grocery's 2640 photos on 2 cores)


def imagenet_features(samples: Sequence[Sample], image_size: int = EMBEDDING_SIZE,
                      workers: int = 4) -> tuple[np.ndarray, list[Path]]:
    """Pooled 1280-d ImageNet Lite0 features of the readable samples, and their paths."""
    # Deferred: TensorFlow loads only when features are computed (the threshold is read without it).
    from edgeshop.train._keras import keras
    from edgeshop.train.architectures import (
        LITE0_MEAN,
        LITE0_STD,
        build_efficientnet_lite0,
        find_pretrained_weights,
        get_architecture,
        load_weights_npz,
    )

    spec = InputSpec(image_size, image_size, interpolation="linear", mean=LITE0_MEAN, std=LITE0_STD)
    loaded = load_images([Sample(s.path, "") for s in samples], [""], spec, workers)
    model = build_efficientnet_lite0(2, image_size, dropout=0.0)
    load_weights_npz(model, find_pretrained_weights(get_architecture("efficientnet_lite0")))
    pooled = keras.Model(model.input, model.get_layer("pool").output)
    if not len(loaded.paths):
        return np.zeros((0, 1280), np.float32), []
    return pooled.predict(loaded.pixels.astype(np.float32), batch_size=32, verbose=0), loaded.paths


def as_descriptors(features: np.ndarray, paths: Sequence[Path]) -> dict[Path, np.ndarray]:
    """Unit-length features x sqrt(dim): the RMS distance that ``datasets.similarity_groups``
    uses is then sqrt(2 * (1 - cosine)), on the same scale as the thumbnails'."""
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    return dict(zip(paths, unit * np.sqrt(features.shape[1]), strict=True))


def imagenet_descriptors(samples: Sequence[Sample], image_size: int = EMBEDDING_SIZE,
                         workers: int = 4) -> dict[Path, np.ndarray | None]:
    """Per sample its embedding descriptor (None: unreadable, a group of its own)."""
    features, paths = imagenet_features(samples, image_size, workers)
    found = as_descriptors(features, paths)
    return {s.path: found.get(s.path) for s in samples}
