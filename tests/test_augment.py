"""Augmentation (edgeshop/train/augment.py): each perturbation does what it says, one at a
time, on images whose content makes the effect measurable; and batch-level CutMix / MixUp."""

from __future__ import annotations

import numpy as np

NOTHING = dict(min_area=1.0, max_aspect_change=1.0, flip=False, rotation_degrees=0.0, brightness=0.0, contrast=0.0,
               saturation=0.0, color_cast=0.0, blur_probability=0.0)


def _augment(images: np.ndarray, seed: int = 0, **changes) -> np.ndarray:
    from edgeshop.train._keras import tf
    from edgeshop.train.augment import AugmentConfig, make_augmenter

    augment = make_augmenter(AugmentConfig(**{**NOTHING, **changes}), seed=seed)
    return augment(tf.constant(images, tf.float32), tf.constant([seed, 1])).numpy()


def _ramp(batch: int = 32, size: int = 32) -> np.ndarray:
    """Value = 8 x column: left dark, right bright, the same in every row and channel."""
    row = np.arange(size, dtype=np.float32) * 8
    return np.broadcast_to(row[None, None, :, None], (batch, size, size, 3)).copy()


def test_with_every_perturbation_off_images_pass_unchanged():
    images = np.random.default_rng(0).uniform(0, 255, (4, 24, 24, 3)).astype(np.float32)
    np.testing.assert_allclose(_augment(images), images, atol=1e-3)


def test_flip_mirrors_left_and_right_for_about_half_the_images():
    images = _ramp()
    out = _augment(images, flip=True)
    flipped = [np.allclose(o, i[:, ::-1], atol=1e-3) for o, i in zip(out, images, strict=True)]
    kept = [np.allclose(o, i, atol=1e-3) for o, i in zip(out, images, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))  # mirrored or untouched, nothing else
    assert 6 <= sum(flipped) <= 26  # p = 0.5 over 32 images
    assert np.allclose(out[np.array(flipped)][:, :, 0, 0], 248)  # the bright right edge is now on the left


def test_random_resized_crop_zooms_into_a_part_of_the_image():
    images = _ramp()
    out = _augment(images, min_area=0.25)
    span_in = np.ptp(images[0, 0, :, 0])
    spans = np.ptp(out[:, 16, :, 0], axis=1)  # how much of the ramp each output row still covers
    assert (spans < span_in - 1).all()  # every image lost part of its width
    assert (spans > 0.25 * span_in).all()  # at least min_area's worth of it, stretched to full size
    assert (np.diff(out[:, 16, :, 0], axis=1) >= -1e-3).all()  # still the same ramp, only zoomed
    assert out.shape == images.shape


def test_colour_changes_stay_in_range_and_keep_the_picture():
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (16, 24, 24, 3)).astype(np.float32)
    out = _augment(images, brightness=0.6, contrast=0.8, saturation=0.8, color_cast=0.3)
    assert out.min() >= 0 and out.max() <= 255
    assert np.abs(out - images).mean() > 10  # colours changed
    for o, i in zip(out, images, strict=True):  # but no pixel moved: the picture is still there
        assert np.corrcoef(o.ravel(), i.ravel())[0, 1] > 0.5
    cast = _augment(np.full((8, 4, 4, 3), 128, np.float32), color_cast=0.3)  # white balance alone tints grey
    assert (np.ptp(cast.mean(axis=(1, 2)), axis=1) > 1).all()


def test_blur_smooths_only_the_chosen_images():
    images = np.zeros((32, 16, 16, 3), np.float32)
    images[:, :, ::2] = 255  # one-pixel stripes: blur averages them towards grey
    out = _augment(images, blur_probability=0.5)
    blurred = np.abs(out - images).max(axis=(1, 2, 3)) > 1
    assert 4 <= blurred.sum() <= 28
    assert (out[blurred][:, 4:12, 4:12].std(axis=(1, 2, 3)) < 0.5 * images.std()).all()


def test_mix_batch_mixes_labels_in_proportion_to_pixels():
    from edgeshop.train._keras import tf
    from edgeshop.train.augment import mix_batch

    values = np.array([0, 100, 200, 255], np.float32)
    images = tf.constant(np.broadcast_to(values[:, None, None, None], (4, 8, 8, 3)).copy())
    labels = tf.one_hot([0, 1, 2, 3], 4)
    kinds = set()
    for seed in range(24):
        mixed, targets = mix_batch(images, labels, tf.constant([seed, 3]), probability=1.0)
        mixed, targets = mixed.numpy(), targets.numpy()
        np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
        # each image is mixed with its partner in the reversed batch, and only with it
        assert ((targets > 1e-6) <= (np.eye(4) + np.eye(4)[::-1]).astype(bool)).all()
        # Constant images: each mixed image's mean is the label-weighted mean of its sources.
        np.testing.assert_allclose(mixed.mean(axis=(1, 2, 3)), targets @ values, atol=0.5)
        own = targets[0, 0]  # image 0 (value 0) mixed with image 3 (value 255)
        if set(np.unique(mixed[0])) <= {0.0, 255.0}:  # CutMix: pixels are one source or the other
            kinds.add("cutmix")
            assert np.mean(mixed[0] == 0.0) == np.float32(own)  # label weight = the share of its own pixels
        else:  # MixUp: every pixel is the same blend
            kinds.add("mixup")
            np.testing.assert_allclose(mixed[0], 255 * (1 - own), atol=1e-3)
    assert kinds == {"cutmix", "mixup"}
    unchanged, same = mix_batch(images, labels, tf.constant([1, 2]), probability=0.0)
    assert np.array_equal(unchanged.numpy(), images.numpy()) and np.array_equal(same.numpy(), labels.numpy())
