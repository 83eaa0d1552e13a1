"""Augmentation for phone and shelf-camera photos, applied to batches in tf.data.

Works on model-sized float32 pixels in [0, 255] after the shared preprocessing, so
training sees exactly the pixels the device sees, plus these perturbations: random
resized crop (zoom and framing), horizontal flip, small rotation, brightness, contrast,
saturation, a white-balance cast, and occasional blur (motion/focus on a moving cart).
No vertical flips: shelves are upright.

`mix_batch` adds CutMix / MixUp (labels mixed in proportion), the regulariser that keeps
a small dataset from being memorised in a few epochs of fine-tuning.
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


def make_augmenter(config: AugmentConfig, seed: int, output_size: int | None = None):
    """A function (images float32 [B,H,W,3] in 0..255, seed int [2]) -> augmented images,
    output_size x output_size when given (the crop is resized to it), else HxW."""
    rotate = keras.layers.RandomRotation(config.rotation_degrees / 360.0, fill_mode="reflect", seed=seed)
    blur_kernel = _gaussian_kernel(5, 1.2)

    def augment(images, batch_seed):
        rng = _Random(batch_seed)
        shape = tf.shape(images)
        batch = shape[0]
        height, width = (output_size, output_size) if output_size else (shape[1], shape[2])
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


def mix_batch(images, labels, batch_seed, probability: float, mixup_alpha: float = 0.2):
    """CutMix or MixUp (50/50) on a batch with the given probability, else unchanged.

    Each image is paired with the batch reversed. CutMix pastes a box of area 1 - lam
    (lam ~ U(0, 1)); MixUp blends with lam ~ Beta(alpha, alpha). Labels (one-hot or
    smoothed, [B, C]) are mixed by the same lam, for CutMix the pasted area actually used.
    """
    rng = _Random(batch_seed)
    rng.salt = 100  # draws independent of the augmenter's, which uses the same seed
    shape = tf.shape(images)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    partner_images, partner_labels = tf.reverse(images, axis=[0]), tf.reverse(labels, axis=[0])
    apply, use_cutmix = rng.uniform([]) < probability, rng.uniform([]) < 0.5

    # CutMix: a box of side sqrt(1 - lam), centred anywhere, clipped at the borders.
    side = tf.sqrt(1.0 - rng.uniform([]))
    cy, cx = rng.uniform([]) * height, rng.uniform([]) * width
    y0, y1 = tf.clip_by_value(cy - side * height / 2, 0, height), tf.clip_by_value(cy + side * height / 2, 0, height)
    x0, x1 = tf.clip_by_value(cx - side * width / 2, 0, width), tf.clip_by_value(cx + side * width / 2, 0, width)
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    box = tf.cast((rows >= tf.floor(y0)) & (rows < tf.floor(y1)) & (cols >= tf.floor(x0)) & (cols < tf.floor(x1)),
                  tf.float32)[None, :, :, None]
    cut_lam = 1.0 - tf.reduce_mean(box)
    cut_images = images * (1.0 - box) + partner_images * box

    # MixUp: Beta(a, a) from two Gammas (stateless).
    g1 = tf.random.stateless_gamma([], rng.seed + [1, 101], alpha=mixup_alpha)
    g2 = tf.random.stateless_gamma([], rng.seed + [1, 102], alpha=mixup_alpha)
    mix_lam = g1 / (g1 + g2 + 1e-12)
    mix_images = mix_lam * images + (1.0 - mix_lam) * partner_images

    lam = tf.where(use_cutmix, cut_lam, mix_lam)
    mixed_images = tf.where(use_cutmix, cut_images, mix_images)
    mixed_labels = lam * labels + (1.0 - lam) * partner_labels
    return tf.where(apply, mixed_images, images), tf.where(apply, mixed_labels, labels)
