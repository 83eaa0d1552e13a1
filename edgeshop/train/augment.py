"""Augmentation for phone and shelf-camera photos, applied to batches in tf.data.

Works on model-sized float32 pixels in [0, 255] after the shared preprocessing, so
training sees exactly the pixels the device sees, plus these perturbations: random
resized crop (zoom and framing), horizontal flip, small rotation, brightness, contrast,
saturation, a white-balance cast, and occasional blur (motion/focus on a moving cart).
No vertical flips: shelves are upright.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeshop.train._keras import keras, tf


@dataclass(frozen=True)
class AugmentConfig:
    min_area: float = 0.5  # random resized crop keeps 50-100% of the image area
    max_aspect_change: float = 4 / 3
    flip: bool = True
    rotation_degrees: float = 10.0
    brightness: float = 0.2  # fraction of full scale
    contrast: float = 0.25
    saturation: float = 0.3
    color_cast: float = 0.08  # per-channel gain jitter (white balance)
    blur_probability: float = 0.15


class _Random:
    """Stateless draws from one per-batch seed (safe inside tf.data, reproducible)."""

    def __init__(self, seed):
        self.seed = tf.cast(seed, tf.int32)
        self.salt = 0

    def uniform(self, shape, low=0.0, high=1.0):
        self.salt += 1
        return tf.random.stateless_uniform(shape, self.seed + [0, self.salt], low, high)


def make_augmenter(config: AugmentConfig, seed: int):
    """A function (images float32 [B,H,W,3] in 0..255, seed int [2]) -> augmented images."""
    rotate = keras.layers.RandomRotation(config.rotation_degrees / 360.0, fill_mode="reflect", seed=seed)
    blur_kernel = _gaussian_kernel(5, 1.2)

    def augment(images, batch_seed):
        rng = _Random(batch_seed)
        shape = tf.shape(images)
        batch, height, width = shape[0], shape[1], shape[2]
        images = _random_resized_crop(images, rng, batch, height, width, config)
        if config.flip:
            flip = rng.uniform([batch]) < 0.5
            images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
        if config.rotation_degrees > 0:
            images = rotate(images, training=True)
        images = _color_jitter(images, rng, batch, config)
        if config.blur_probability > 0:
            blurred = tf.nn.depthwise_conv2d(images, blur_kernel, [1, 1, 1, 1], "SAME")
            use = rng.uniform([batch]) < config.blur_probability
            images = tf.where(use[:, None, None, None], blurred, images)
        return tf.clip_by_value(images, 0.0, 255.0)

    return augment


def _random_resized_crop(images, rng, batch, height, width, config: AugmentConfig):
    area = rng.uniform([batch], config.min_area, 1.0)
    log_ratio = tf.math.log(config.max_aspect_change)
    aspect = tf.exp(rng.uniform([batch], -log_ratio, log_ratio))
    box_h = tf.minimum(tf.sqrt(area / aspect), 1.0)
    box_w = tf.minimum(tf.sqrt(area * aspect), 1.0)
    y0 = rng.uniform([batch]) * (1.0 - box_h)
    x0 = rng.uniform([batch]) * (1.0 - box_w)
    boxes = tf.stack([y0, x0, y0 + box_h, x0 + box_w], axis=1)
    return tf.image.crop_and_resize(images, boxes, tf.range(batch), tf.stack([height, width]))


def _color_jitter(images, rng, batch, config: AugmentConfig):
    def per_image(low, high):
        return rng.uniform([batch], low, high)[:, None, None, None]

    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = (images - mean) * per_image(1 - config.contrast, 1 + config.contrast) + mean
    gray = tf.reduce_mean(images, axis=3, keepdims=True)
    images = gray + (images - gray) * per_image(1 - config.saturation, 1 + config.saturation)
    gains = rng.uniform([batch, 1, 1, 3], 1 - config.color_cast, 1 + config.color_cast)
    images = images * gains
    return images + per_image(-config.brightness, config.brightness) * 255.0


def _gaussian_kernel(size: int, sigma: float):
    x = tf.range(size, dtype=tf.float32) - (size - 1) / 2
    g = tf.exp(-(x**2) / (2 * sigma**2))
    g = g / tf.reduce_sum(g)
    kernel = g[:, None] * g[None, :]
    return tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
