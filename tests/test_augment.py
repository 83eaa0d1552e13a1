"""Batch-level CutMix / MixUp (edgeshop/train/augment.py mix_batch)."""

from __future__ import annotations

import numpy as np


def test_mix_batch_mixes_labels_in_proportion_to_pixels():
    from edgeshop.train._keras import tf
    from edgeshop.train.augment import mix_batch

    values = np.array([0, 100, 200, 255], np.float32)
    images = tf.constant(np.broadcast_to(values[:, None, None, None], (4, 8, 8, 3)).copy())
    labels = tf.one_hot([0, 1, 2, 3], 4)
    for seed in range(12):
        mixed, targets = mix_batch(images, labels, tf.constant([seed, 3]), probability=1.0)
        targets = targets.numpy()
        np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
        # Constant images: each mixed image's mean is the label-weighted mean of its sources.
        np.testing.assert_allclose(tf.reduce_mean(mixed, axis=[1, 2, 3]).numpy(), targets @ values, atol=0.5)
    unchanged, same = mix_batch(images, labels, tf.constant([1, 2]), probability=0.0)
    assert np.array_equal(unchanged.numpy(), images.numpy()) and np.array_equal(same.numpy(), labels.numpy())
